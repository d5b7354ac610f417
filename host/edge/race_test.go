//go:build race

package edge

// raceEnabled: under the race detector, wazero's compiler runs about 20
// times slower, so tests that must compile from scratch use a tiny module.
const raceEnabled = true
