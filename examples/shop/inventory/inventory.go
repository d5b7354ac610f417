// Package inventory is the shop's stock-keeping app. It never oversells:
// every change to a stock level is a conditional write on the level's ETag,
// retried on Conflict, and a reservation is written in the same transaction
// as the level it takes from, so a retried Reserve cannot take stock twice.
package inventory

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/roam-dev/roam/examples/shop/contract"
	"github.com/roam-dev/roam/sdk"
)

//go:generate go run github.com/roam-dev/roam/cmd/roam-jsongen -type level,reservation

// App registers the inventory app.
var App = sdk.NewApp(contract.InventoryApp, func(env sdk.Env, r *sdk.Router) error {
	svc := &Service{state: env.State(contract.Store), env: env}
	sdk.Handle(r, "Stock", svc.Stock)
	sdk.Handle(r, "Restock", svc.Restock)
	sdk.Handle(r, "Reserve", svc.Reserve)
	sdk.Handle(r, "Release", svc.Release)
	sdk.SubscribeJSON(r, contract.PubSub, contract.TopicCancelled, svc.onCancelled)
	return nil
})

// Service implements contract.Inventory.
type Service struct {
	state sdk.State
	env   sdk.Env
}

var _ contract.Inventory = (*Service)(nil)

// maxAttempts bounds the ETag retry loops. Under 64 concurrent writers on one
// SKU each round lets one writer through, so this leaves ample headroom.
const maxAttempts = 200

type level struct {
	Available int `json:"available"`
}

type reservation struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

func stockKey(sku string) string      { return "stock/" + sku }
func reservationKey(id string) string { return "reservation/" + id }
func validSKU(sku string) error {
	if sku == "" || len(sku) > 64 {
		return sdk.NewError(sdk.InvalidArgument, "sku is required (at most 64 characters)")
	}
	return nil
}

// Stock returns the available quantity of a SKU.
func (s *Service) Stock(ctx context.Context, req contract.SKURef) (contract.StockLevel, error) {
	if err := validSKU(req.SKU); err != nil {
		return contract.StockLevel{}, err
	}
	l, _, err := sdk.GetJSON[level](ctx, s.state, stockKey(req.SKU))
	if sdk.IsCode(err, sdk.NotFound) {
		return contract.StockLevel{}, sdk.Errorf(sdk.NotFound, "unknown sku %q: restock it first", req.SKU)
	}
	return contract.StockLevel{SKU: req.SKU, Available: l.Available}, err
}

// Restock adds units to a SKU, creating it if need be.
func (s *Service) Restock(ctx context.Context, req contract.Restock) (contract.StockLevel, error) {
	if err := validSKU(req.SKU); err != nil {
		return contract.StockLevel{}, err
	}
	if req.Quantity <= 0 || req.Quantity > 1_000_000 {
		return contract.StockLevel{}, sdk.NewError(sdk.InvalidArgument, "quantity must be between 1 and 1000000")
	}
	l, err := sdk.Update(ctx, s.state, stockKey(req.SKU), maxAttempts, func(cur level, _ bool) (level, error) {
		cur.Available += req.Quantity
		return cur, nil
	})
	return contract.StockLevel{SKU: req.SKU, Available: l.Available}, err
}

// Reserve takes stock for an order, once per order id.
func (s *Service) Reserve(ctx context.Context, req contract.Reserve) (contract.StockLevel, error) {
	if err := validSKU(req.SKU); err != nil {
		return contract.StockLevel{}, err
	}
	if req.OrderID == "" {
		return contract.StockLevel{}, sdk.NewError(sdk.InvalidArgument, "order_id is required")
	}
	if req.Quantity <= 0 {
		return contract.StockLevel{}, sdk.NewError(sdk.InvalidArgument, "quantity must be positive")
	}
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if _, err = s.state.Get(ctx, reservationKey(req.OrderID)); err == nil {
			return s.Stock(ctx, contract.SKURef{SKU: req.SKU}) // already reserved
		} else if !sdk.IsCode(err, sdk.NotFound) {
			return contract.StockLevel{}, err
		}
		l, etag, err := sdk.GetJSON[level](ctx, s.state, stockKey(req.SKU))
		if sdk.IsCode(err, sdk.NotFound) {
			return contract.StockLevel{}, sdk.Errorf(sdk.FailedPrecondition, "unknown sku %q: restock it first", req.SKU)
		}
		if err != nil {
			return contract.StockLevel{}, err
		}
		if l.Available < req.Quantity {
			return contract.StockLevel{}, sdk.Errorf(sdk.FailedPrecondition, "sku %q has %d available, order wants %d", req.SKU, l.Available, req.Quantity)
		}
		l.Available -= req.Quantity
		err = s.state.Transact(ctx, []sdk.Op{
			setJSON(stockKey(req.SKU), l, sdk.WriteOptions{ETag: etag}),
			setJSON(reservationKey(req.OrderID), reservation{SKU: req.SKU, Quantity: req.Quantity}, sdk.WriteOptions{IfAbsent: true}),
		})
		if err == nil {
			return contract.StockLevel{SKU: req.SKU, Available: l.Available}, nil
		}
		if !sdk.IsCode(err, sdk.Conflict) {
			return contract.StockLevel{}, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return contract.StockLevel{}, err
		}
	}
	return contract.StockLevel{}, sdk.Errorf(sdk.Unavailable, "reserve %s: too much contention on sku %q, try again", req.OrderID, req.SKU)
}

// Release returns an order's reservation to stock. Releasing an order that
// holds no reservation is a no-op, so duplicate events are harmless.
func (s *Service) Release(ctx context.Context, req contract.Release) (contract.StockLevel, error) {
	if req.OrderID == "" {
		return contract.StockLevel{}, sdk.NewError(sdk.InvalidArgument, "order_id is required")
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		resv, retag, err := sdk.GetJSON[reservation](ctx, s.state, reservationKey(req.OrderID))
		if sdk.IsCode(err, sdk.NotFound) {
			return contract.StockLevel{}, nil
		}
		if err != nil {
			return contract.StockLevel{}, err
		}
		l, etag, err := sdk.GetJSON[level](ctx, s.state, stockKey(resv.SKU))
		if err != nil && !sdk.IsCode(err, sdk.NotFound) {
			return contract.StockLevel{}, err
		}
		l.Available += resv.Quantity
		o := sdk.WriteOptions{ETag: etag}
		if etag == "" {
			o = sdk.WriteOptions{IfAbsent: true}
		}
		err = s.state.Transact(ctx, []sdk.Op{
			sdk.DeleteOp(reservationKey(req.OrderID), sdk.WriteOptions{ETag: retag}),
			setJSON(stockKey(resv.SKU), l, o),
		})
		if err == nil {
			return contract.StockLevel{SKU: resv.SKU, Available: l.Available}, nil
		}
		if !sdk.IsCode(err, sdk.Conflict) {
			return contract.StockLevel{}, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return contract.StockLevel{}, err
		}
	}
	return contract.StockLevel{}, sdk.Errorf(sdk.Unavailable, "release %s: too much contention, try again", req.OrderID)
}

func (s *Service) onCancelled(ctx context.Context, e *sdk.Event, ev contract.OrderEvent) error {
	l, err := s.Release(ctx, contract.Release{OrderID: ev.OrderID})
	if err == nil {
		s.env.Log(ctx).Info("released stock", "order", ev.OrderID, "sku", l.SKU, "available", l.Available)
	}
	return err
}

func setJSON(key string, v any, o sdk.WriteOptions) sdk.Op {
	b, err := sdk.Marshal(v)
	if err != nil {
		panic(err) // the shop's own types always encode
	}
	return sdk.SetOp(key, b, o)
}

// backoff waits a little before a retry, with jitter so that contenders
// spread out instead of colliding again in lock-step.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(rand.IntN(1+min(attempt, 10))*500) * time.Microsecond
	if d == 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
