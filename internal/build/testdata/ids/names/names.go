// Package names holds app ids as constants, for TestFindAppIDs.
package names

const (
	base   = "ship"
	Orders = base + "-" + "orders"
)
