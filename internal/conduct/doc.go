// Package conduct holds the end-to-end tests of Switchboard's conduct when
// a provider misbehaves mid-stream or answers oddly: each fault of the mock
// provider is driven through the HTTP front door with the official openai-go
// streaming client, real worker pools, real NATS and a real ClickHouse, and
// the tests check the text the caller assembled, the calls each mock saw and
// the rows stored. The package has no code of its own.
package conduct
