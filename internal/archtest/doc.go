// Package archtest holds the test that keeps the package layers of
// ARCHITECTURE.md true: every import points to the same or a lower layer.
package archtest
