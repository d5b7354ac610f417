// Package contract is the shop's business contract: the request and reply
// types of both apps and their interfaces, in the style of the article this
// project grew from. An interface here is implemented once (in orders or
// inventory) and adapted to every transport by the SDK: sdk.Handle exposes it
// over the host's HTTP API, Dapr and wasm, and the clients below call it
// through sdk.Invoker wherever it runs.
//
// It imports only the SDK, so an app may import the other app's contract
// without linking in that app.
package contract

import (
	"context"

	"github.com/roam-dev/roam/sdk"
)

//go:generate go run github.com/roam-dev/roam/cmd/roam-jsongen -type Order,CreateOrder,OrderRef,OrderReply,CustomerRef,OrderList,OrderEvent,SKURef,Restock,Reserve,Release,StockLevel

// The shop's pub/sub component, topics and state store.
const (
	PubSub         = "pubsub"
	Store          = "statestore"
	TopicCreated   = "order.created"
	TopicCancelled = "order.cancelled"
	InventoryApp   = "inventory"
	OrdersApp      = "orders"
)

// Order is a stored order.
type Order struct {
	ID       string `json:"id"`
	Customer string `json:"customer"`
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
	Status   string `json:"status"` // "created" or "cancelled"
}

// Order statuses.
const (
	StatusCreated   = "created"
	StatusCancelled = "cancelled"
)

// CreateOrder asks for a new order.
type CreateOrder struct {
	Customer string `json:"customer"`
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// OrderRef names an order; ETag, when set, makes a change conditional.
type OrderRef struct {
	ID   string `json:"id"`
	ETag string `json:"etag,omitempty"`
}

// OrderReply is an order with its current ETag.
type OrderReply struct {
	Order Order  `json:"order"`
	ETag  string `json:"etag"`
}

// CustomerRef names a customer.
type CustomerRef struct {
	Customer string `json:"customer"`
}

// OrderList is a customer's orders, oldest first.
type OrderList struct {
	Orders []Order `json:"orders"`
}

// OrderEvent is the data of order.created and order.cancelled.
type OrderEvent struct {
	OrderID  string `json:"order_id"`
	Customer string `json:"customer"`
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Orders is the orders app's contract.
type Orders interface {
	Create(ctx context.Context, req CreateOrder) (OrderReply, error)
	Get(ctx context.Context, req OrderRef) (OrderReply, error)
	Cancel(ctx context.Context, req OrderRef) (OrderReply, error)
	ListByCustomer(ctx context.Context, req CustomerRef) (OrderList, error)
}

// SKURef names a stock-keeping unit.
type SKURef struct {
	SKU string `json:"sku"`
}

// Restock adds quantity units of SKU.
type Restock struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Reserve takes quantity units of SKU for an order. It is idempotent per
// order: reserving twice for one order takes stock once.
type Reserve struct {
	OrderID  string `json:"order_id"`
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Release returns an order's reservation to stock. Idempotent.
type Release struct {
	OrderID string `json:"order_id"`
}

// StockLevel is the available quantity of a SKU.
type StockLevel struct {
	SKU       string `json:"sku"`
	Available int    `json:"available"`
}

// Inventory is the inventory app's contract.
type Inventory interface {
	Stock(ctx context.Context, req SKURef) (StockLevel, error)
	Restock(ctx context.Context, req Restock) (StockLevel, error)
	Reserve(ctx context.Context, req Reserve) (StockLevel, error)
	Release(ctx context.Context, req Release) (StockLevel, error)
}

// InventoryClient calls the inventory app by app id, wherever it runs.
type InventoryClient struct {
	Invoker sdk.Invoker
	AppID   string // default InventoryApp; may carry a namespace ("inventory.shop")
}

var _ Inventory = InventoryClient{}

func (c InventoryClient) app() string {
	if c.AppID == "" {
		return InventoryApp
	}
	return c.AppID
}

// Stock calls inventory.Stock.
func (c InventoryClient) Stock(ctx context.Context, req SKURef) (StockLevel, error) {
	return sdk.Call[StockLevel](ctx, c.Invoker, c.app(), "Stock", req)
}

// Restock calls inventory.Restock.
func (c InventoryClient) Restock(ctx context.Context, req Restock) (StockLevel, error) {
	return sdk.Call[StockLevel](ctx, c.Invoker, c.app(), "Restock", req)
}

// Reserve calls inventory.Reserve.
func (c InventoryClient) Reserve(ctx context.Context, req Reserve) (StockLevel, error) {
	return sdk.Call[StockLevel](ctx, c.Invoker, c.app(), "Reserve", req)
}

// Release calls inventory.Release.
func (c InventoryClient) Release(ctx context.Context, req Release) (StockLevel, error) {
	return sdk.Call[StockLevel](ctx, c.Invoker, c.app(), "Release", req)
}
