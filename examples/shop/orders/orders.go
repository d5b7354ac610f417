// Package orders is the shop's order-taking app. Create reserves stock in the
// inventory app by invoking it (in-process, over HTTP, through Dapr or from
// wasm: the app does not know which), stores the order and publishes
// order.created. Cancel publishes order.cancelled, which inventory consumes to
// release the stock.
package orders

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/roam-dev/roam/examples/shop/contract"
	"github.com/roam-dev/roam/sdk"
)

//go:generate go run github.com/roam-dev/roam/cmd/roam-jsongen -type customerIndex

// App registers the orders app.
var App = sdk.NewApp(contract.OrdersApp, func(env sdk.Env, r *sdk.Router) error {
	inventoryID := contract.InventoryApp
	if v, err := env.Config().Get(context.Background(), "inventory-app-id"); err == nil && v != "" {
		inventoryID = v // e.g. "inventory.shop" to call across namespaces
	}
	var svc contract.Orders = &Service{
		env:       env,
		state:     env.State(contract.Store),
		inventory: contract.InventoryClient{Invoker: env.Invoker(), AppID: inventoryID},
	}
	sdk.Handle(r, "Create", svc.Create)
	sdk.Handle(r, "Get", svc.Get)
	sdk.Handle(r, "Cancel", svc.Cancel)
	sdk.Handle(r, "ListByCustomer", svc.ListByCustomer)
	return nil
})

// Service implements contract.Orders.
type Service struct {
	env       sdk.Env
	state     sdk.State
	inventory contract.Inventory
}

const maxAttempts = 100

type customerIndex struct {
	IDs []string `json:"ids"`
}

func orderKey(id string) string   { return "order/" + id }
func customerKey(c string) string { return "customer/" + c }

// Create validates the request, reserves stock, stores the order and
// publishes order.created.
func (s *Service) Create(ctx context.Context, req contract.CreateOrder) (contract.OrderReply, error) {
	switch {
	case req.Customer == "" || len(req.Customer) > 64:
		return contract.OrderReply{}, sdk.NewError(sdk.InvalidArgument, "customer is required (at most 64 characters)")
	case req.SKU == "" || len(req.SKU) > 64:
		return contract.OrderReply{}, sdk.NewError(sdk.InvalidArgument, "sku is required (at most 64 characters)")
	case req.Quantity < 1 || req.Quantity > 1000:
		return contract.OrderReply{}, sdk.NewError(sdk.InvalidArgument, "quantity must be between 1 and 1000")
	}
	o := contract.Order{ID: newID(), Customer: req.Customer, SKU: req.SKU, Quantity: req.Quantity, Status: contract.StatusCreated}
	if _, err := s.inventory.Reserve(ctx, contract.Reserve{OrderID: o.ID, SKU: o.SKU, Quantity: o.Quantity}); err != nil {
		return contract.OrderReply{}, err
	}
	if err := s.store(ctx, o); err != nil {
		// Give the stock back; the order never existed.
		if _, rerr := s.inventory.Release(ctx, contract.Release{OrderID: o.ID}); rerr != nil {
			s.env.Log(ctx).Error("could not release stock of a failed order", "order", o.ID, "err", rerr)
		}
		return contract.OrderReply{}, err
	}
	if err := s.publish(ctx, contract.TopicCreated, o); err != nil {
		return contract.OrderReply{}, err
	}
	s.env.Log(ctx).Info("order created", "order", o.ID, "customer", o.Customer, "sku", o.SKU, "quantity", o.Quantity)
	return s.Get(ctx, contract.OrderRef{ID: o.ID})
}

// store writes the order and appends it to its customer's index, atomically.
func (s *Service) store(ctx context.Context, o contract.Order) error {
	ob, err := sdk.Marshal(o)
	if err != nil {
		return err
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		idx, etag, err := sdk.GetJSON[customerIndex](ctx, s.state, customerKey(o.Customer))
		if err != nil && !sdk.IsCode(err, sdk.NotFound) {
			return err
		}
		idx.IDs = append(idx.IDs, o.ID)
		ib, err := sdk.Marshal(idx)
		if err != nil {
			return err
		}
		io := sdk.WriteOptions{ETag: etag}
		if etag == "" {
			io = sdk.WriteOptions{IfAbsent: true}
		}
		err = s.state.Transact(ctx, []sdk.Op{
			sdk.SetOp(orderKey(o.ID), ob, sdk.WriteOptions{IfAbsent: true}),
			sdk.SetOp(customerKey(o.Customer), ib, io),
		})
		if !sdk.IsCode(err, sdk.Conflict) {
			return err
		}
	}
	return sdk.Errorf(sdk.Unavailable, "too much contention on customer %q, try again", o.Customer)
}

// Get returns an order and its ETag.
func (s *Service) Get(ctx context.Context, req contract.OrderRef) (contract.OrderReply, error) {
	if req.ID == "" {
		return contract.OrderReply{}, sdk.NewError(sdk.InvalidArgument, "id is required")
	}
	o, etag, err := sdk.GetJSON[contract.Order](ctx, s.state, orderKey(req.ID))
	if sdk.IsCode(err, sdk.NotFound) {
		return contract.OrderReply{}, sdk.Errorf(sdk.NotFound, "no order %q", req.ID)
	}
	if err != nil {
		return contract.OrderReply{}, err
	}
	return contract.OrderReply{Order: o, ETag: etag}, nil
}

// Cancel marks an order cancelled and publishes order.cancelled. With an
// ETag, it cancels only the version the caller saw (Conflict otherwise).
// Cancelling a cancelled order publishes the event again and succeeds, so a
// client may retry a Cancel whose reply it lost.
func (s *Service) Cancel(ctx context.Context, req contract.OrderRef) (contract.OrderReply, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		cur, err := s.Get(ctx, contract.OrderRef{ID: req.ID})
		if err != nil {
			return contract.OrderReply{}, err
		}
		if req.ETag != "" && req.ETag != cur.ETag {
			return contract.OrderReply{}, sdk.Errorf(sdk.Conflict, "order %q changed since etag %s (now %s)", req.ID, req.ETag, cur.ETag)
		}
		o := cur.Order
		if o.Status != contract.StatusCancelled {
			o.Status = contract.StatusCancelled
			err = sdk.SetJSON(ctx, s.state, orderKey(o.ID), o, sdk.WriteOptions{ETag: cur.ETag})
			if sdk.IsCode(err, sdk.Conflict) && req.ETag == "" {
				continue
			}
			if err != nil {
				return contract.OrderReply{}, err
			}
		}
		if err := s.publish(ctx, contract.TopicCancelled, o); err != nil {
			return contract.OrderReply{}, err
		}
		s.env.Log(ctx).Info("order cancelled", "order", o.ID)
		return s.Get(ctx, contract.OrderRef{ID: o.ID})
	}
	return contract.OrderReply{}, sdk.Errorf(sdk.Unavailable, "too much contention on order %q, try again", req.ID)
}

// ListByCustomer returns a customer's orders, oldest first.
func (s *Service) ListByCustomer(ctx context.Context, req contract.CustomerRef) (contract.OrderList, error) {
	if req.Customer == "" {
		return contract.OrderList{}, sdk.NewError(sdk.InvalidArgument, "customer is required")
	}
	out := contract.OrderList{Orders: []contract.Order{}}
	idx, _, err := sdk.GetJSON[customerIndex](ctx, s.state, customerKey(req.Customer))
	if sdk.IsCode(err, sdk.NotFound) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	keys := make([]string, len(idx.IDs))
	for i, id := range idx.IDs {
		keys[i] = orderKey(id)
	}
	items, err := s.state.BulkGet(ctx, keys)
	if err != nil {
		return out, err
	}
	for _, it := range items {
		if !it.Found() {
			continue
		}
		var o contract.Order
		if err := sdk.Unmarshal(it.Value, &o); err != nil {
			return out, sdk.Errorf(sdk.Internal, "order %s does not decode: %v", it.Key, err)
		}
		out.Orders = append(out.Orders, o)
	}
	return out, nil
}

func (s *Service) publish(ctx context.Context, topic string, o contract.Order) error {
	err := sdk.PublishJSON(ctx, s.env.Publisher(), contract.PubSub, topic,
		contract.OrderEvent{OrderID: o.ID, Customer: o.Customer, SKU: o.SKU, Quantity: o.Quantity})
	if err != nil {
		return sdk.Errorf(sdk.CodeOf(err), "order %s is saved but %s was not published (retry the call): %v", o.ID, topic, err)
	}
	return nil
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
