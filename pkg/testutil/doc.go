// Package testutil is the root of the test support tree: traffic
// generators, real-exporter runners, test databases and brokers. Its
// packages serve tests and the development tools under scripts/; no
// product package (cmd/ and the rest of pkg/) imports them outside its
// tests, which TestProductDoesNotImportTestutil checks.
package testutil
