// Package jsonbench measures the SDK's JSON codec on the shop's request and
// reply types, the same code natively and inside a wasm guest (package app
// wraps it as an app), with the generated codecs and with encoding/json's
// reflection.
package jsonbench

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/roam-dev/roam/examples/shop/contract"
	"github.com/roam-dev/roam/sdk"
)

// The inputs: what orders.Get and orders.Create decode, as the host hands
// them over.
var (
	getReq     = []byte(`{"id":"8c1d2e3f4a5b6c7d"}`)
	storedOrd  = []byte(`{"id":"8c1d2e3f4a5b6c7d","customer":"bench","sku":"bench","quantity":1,"status":"created"}`)
	createReq  = []byte(`{"customer":"bench","sku":"bench","quantity":1}`)
	stockReply = []byte(`{"sku":"bench","available":999}`)
)

type codec struct {
	marshal   func(any) ([]byte, error)
	unmarshal func([]byte, any) error
}

var codecs = map[string]codec{
	"generated": {sdk.Marshal, sdk.Unmarshal},
	"reflect":   {json.Marshal, json.Unmarshal},
}

// Get is the codec work of one orders.Get: decode the request, decode the
// stored order, encode the reply.
func Get(c codec) error {
	var ref contract.OrderRef
	if err := c.unmarshal(getReq, &ref); err != nil {
		return err
	}
	var o contract.Order
	if err := c.unmarshal(storedOrd, &o); err != nil {
		return err
	}
	_, err := c.marshal(contract.OrderReply{Order: o, ETag: "1"})
	return err
}

// Create is the codec work of one orders.Create: decode the request, encode
// the call to inventory.Reserve and decode its reply, encode the order, the
// customer index and the event, then Get's work for the reply.
func Create(c codec) error {
	var req contract.CreateOrder
	if err := c.unmarshal(createReq, &req); err != nil {
		return err
	}
	o := contract.Order{ID: "8c1d2e3f4a5b6c7d", Customer: req.Customer, SKU: req.SKU, Quantity: req.Quantity, Status: contract.StatusCreated}
	if _, err := c.marshal(contract.Reserve{OrderID: o.ID, SKU: o.SKU, Quantity: o.Quantity}); err != nil {
		return err
	}
	var sl contract.StockLevel
	if err := c.unmarshal(stockReply, &sl); err != nil {
		return err
	}
	if _, err := c.marshal(o); err != nil {
		return err
	}
	if _, err := c.marshal(contract.OrderList{Orders: []contract.Order{o}}); err != nil {
		return err
	}
	if _, err := c.marshal(contract.OrderEvent{OrderID: o.ID, Customer: o.Customer, SKU: o.SKU, Quantity: o.Quantity}); err != nil {
		return err
	}
	return Get(c)
}

// Ops are the operations Run knows.
var Ops = map[string]func(codec) error{"get": Get, "create": Create}

// Run runs op n times with the named codec ("generated" or "reflect") and
// returns the time per run.
func Run(op, codecName string, n int) (time.Duration, error) {
	f, ok := Ops[op]
	c, ok2 := codecs[codecName]
	if !ok || !ok2 || n <= 0 {
		return 0, errors.New("jsonbench: unknown op or codec, or n <= 0")
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := f(c); err != nil {
			return 0, err
		}
	}
	return time.Since(start) / time.Duration(n), nil
}
