// Package sim holds Switchboard's scripted failover simulation (sim_test.go):
// three mock providers over real HTTP with outages and latency spikes over
// time, worker pools sharing breakers, rate limits and latency through NATS
// KV, and 2,000 jobs routed by weight, budget and health.
package sim
