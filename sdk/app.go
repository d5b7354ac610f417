package sdk

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
)

// SetupFunc binds an app to its capabilities and registers its handlers. A
// host calls it once for each instance of the app it runs.
type SetupFunc func(env Env, r *Router) error

// App is a registered app: an id and its setup. Declare one per app in a
// package-level variable with NewApp.
type App struct {
	id    string
	setup SetupFunc
}

var registry struct {
	sync.Mutex
	apps map[string]*App
}

// NewApp registers an app under id. Call it from a package-level variable
// declaration or init, never from main: wasm reactors do not run main. The id
// must be a DNS label (lower-case letters, digits and '-', at most 63). A
// duplicate or invalid id panics at init, the earliest a mistake can show.
func NewApp(id string, setup SetupFunc) *App {
	if err := ValidAppID(id); err != nil {
		panic("sdk.NewApp: " + err.Error())
	}
	if setup == nil {
		panic("sdk.NewApp(" + id + "): nil setup")
	}
	registry.Lock()
	defer registry.Unlock()
	if registry.apps == nil {
		registry.apps = map[string]*App{}
	}
	if _, dup := registry.apps[id]; dup {
		panic("sdk.NewApp: app " + id + " registered twice")
	}
	a := &App{id: id, setup: setup}
	registry.apps[id] = a
	return a
}

// ValidAppID reports whether id is a valid app id (a DNS label).
func ValidAppID(id string) error {
	if id == "" || len(id) > 63 {
		return NewError(InvalidArgument, "app id must be 1 to 63 characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(id)-1
		if !ok {
			return NewError(InvalidArgument, "app id "+QuoteName(id)+" is not a DNS label (a-z, 0-9, inner '-')")
		}
	}
	return nil
}

// ID returns the app's id.
func (a *App) ID() string { return a.id }

// Apps returns every registered app, sorted by id. It is for hosts.
func Apps() []*App {
	registry.Lock()
	defer registry.Unlock()
	out := make([]*App, 0, len(registry.apps))
	for _, a := range registry.apps {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// Setup runs the app's setup against env and returns its handlers. It is for
// hosts. An app that registers nothing is an error: it is almost always a
// setup function that forgot to call Handle.
func (a *App) Setup(env Env) (*Router, error) {
	r := &Router{app: a.id, methods: map[string]Handler{}}
	if err := a.setup(env, r); err != nil {
		return nil, err
	}
	if len(r.methods) == 0 && len(r.subs) == 0 {
		return nil, NewError(FailedPrecondition, "registers no handlers: call sdk.Handle or sdk.Subscribe in its setup")
	}
	return r, nil
}

// Handler is an untyped method handler: request body in, response body out.
type Handler func(ctx context.Context, req []byte) ([]byte, error)

// EventHandler handles one delivered event. Returning an error asks for
// redelivery with backoff; once the backend's retry budget is spent the event
// goes to the dead-letter topic. An error with code InvalidArgument says the
// event can never succeed: it is dead-lettered at once, without retries (the
// counterpart of Dapr's DROP, except that nothing is discarded).
type EventHandler func(ctx context.Context, e *Event) error

// Subscription is a registered topic handler.
type Subscription struct {
	PubSub string
	Topic  string
	// DeadLetterTopic receives the event once retries are exhausted; empty
	// means the backend's default.
	DeadLetterTopic string
	Handler         EventHandler
}

// Router collects an app's handlers during setup.
type Router struct {
	app     string
	methods map[string]Handler
	// appenders holds the append form of the methods registered by Handle,
	// which a wasm guest calls instead (see appendHandler).
	appenders map[string]appendHandler
	subs      []Subscription
}

// HandleRaw registers an untyped method handler.
func (r *Router) HandleRaw(method string, h Handler) {
	if method == "" || h == nil {
		panic("sdk: HandleRaw needs a method name and a handler")
	}
	if _, dup := r.methods[method]; dup {
		panic("sdk: method " + r.app + "." + method + " registered twice")
	}
	r.methods[method] = h
}

// handle registers a method with both its forms.
func (r *Router) handle(method string, h Handler, a appendHandler) {
	r.HandleRaw(method, h)
	if r.appenders == nil {
		r.appenders = map[string]appendHandler{}
	}
	r.appenders[method] = a
}

// Handle registers a typed method: the request body is decoded from JSON into
// a Req (an empty body is the zero Req), and the Resp is encoded as JSON. A
// body that does not decode fails with InvalidArgument before h runs.
func Handle[Req, Resp any](r *Router, method string, h func(ctx context.Context, req Req) (Resp, error)) {
	a := typedHandler(h)
	r.handle(method, func(ctx context.Context, body []byte) ([]byte, error) {
		return a(ctx, nil, body)
	}, a)
}

// appendHandler is a method handler that appends its reply to dst, so that
// a wasm guest encodes straight into its frame buffer instead of into a
// fresh buffer that is then copied. On success the result starts with dst.
type appendHandler func(ctx context.Context, dst, req []byte) ([]byte, error)

// handlerScratch holds a typed handler's decoded request and its reply
// while they are decoded and encoded. Both have to be addressable behind
// an interface (the codec hooks), which would make them escape to the
// heap on every call; a scratch is reused across calls instead, with its
// bound codec methods, so that a call through a generated codec allocates
// nothing of the SDK's own.
type handlerScratch[Req, Resp any] struct {
	req    Req
	resp   Resp
	decode func([]byte) error           // nil: through unmarshal
	encode func([]byte) ([]byte, error) // nil: through marshal
}

// typedHandler adapts h to an appendHandler. A scratch is taken from a
// one-element cache for the duration of a call (a concurrent call, or one
// after a handler panicked, allocates its own), so the adapter is safe for
// the native host's concurrent calls and for goroutines a guest's handler
// leaves running.
func typedHandler[Req, Resp any](h func(ctx context.Context, req Req) (Resp, error)) appendHandler {
	// Which hooks apply is a property of the types, as marshal and
	// unmarshal decide it: a Resp of interface type decides per value.
	// (A Resp that is itself a pointer has the hook on its value only.)
	_, respHook := any(*new(Resp)).(jsonAppender)
	if _, ok := any(new(Resp)).(jsonAppender); !ok {
		respHook = false
	}
	_, reqHook := any(new(Req)).(jsonDecoder)
	var cache atomic.Pointer[handlerScratch[Req, Resp]]
	get := func() *handlerScratch[Req, Resp] {
		if s := cache.Swap(nil); s != nil {
			return s
		}
		s := new(handlerScratch[Req, Resp])
		if reqHook {
			s.decode = any(&s.req).(jsonDecoder).DecodeJSON
		}
		if respHook {
			s.encode = any(&s.resp).(jsonAppender).AppendJSON
		}
		return s
	}
	return func(ctx context.Context, dst, body []byte) ([]byte, error) {
		var zreq Req
		var zresp Resp
		s := get()
		var err error
		if len(body) > 0 {
			if s.decode != nil {
				err = s.decode(body)
			} else {
				err = unmarshal(body, &s.req)
			}
		}
		req := s.req
		s.req = zreq
		if err != nil {
			cache.Store(s)
			return nil, NewError(InvalidArgument, "request body: "+jsonErrorText(err))
		}
		resp, err := h(ctx, req)
		if err != nil {
			cache.Store(s)
			return nil, err
		}
		var out []byte
		if s.encode != nil {
			if dst == nil {
				dst = make([]byte, 0, 128)
			}
			s.resp = resp
			out, err = s.encode(dst)
			s.resp = zresp
		} else {
			out, err = marshal(resp)
			if err == nil && dst != nil {
				out = append(dst, out...)
			}
		}
		cache.Store(s)
		return out, err
	}
}

// SubOption configures a subscription.
type SubOption func(*Subscription)

// DeadLetter routes events that exhaust their retries to topic.
func DeadLetter(topic string) SubOption { return func(s *Subscription) { s.DeadLetterTopic = topic } }

// Subscribe registers h for events on pubsub/topic.
func Subscribe(r *Router, pubsub, topic string, h EventHandler, opts ...SubOption) {
	if pubsub == "" || topic == "" || h == nil {
		panic("sdk: Subscribe needs a pubsub, a topic and a handler")
	}
	s := Subscription{PubSub: pubsub, Topic: topic, Handler: h}
	for _, o := range opts {
		o(&s)
	}
	for _, x := range r.subs {
		if x.PubSub == pubsub && x.Topic == topic {
			panic("sdk: " + r.app + " subscribes to " + pubsub + "/" + topic + " twice")
		}
	}
	r.subs = append(r.subs, s)
}

// SubscribeJSON registers a typed topic handler: the event's data is decoded
// into a T. Data that does not decode fails with InvalidArgument, so it goes
// straight to the dead-letter topic instead of being retried.
func SubscribeJSON[T any](r *Router, pubsub, topic string, h func(ctx context.Context, e *Event, v T) error, opts ...SubOption) {
	Subscribe(r, pubsub, topic, func(ctx context.Context, e *Event) error {
		var v T
		if err := e.Decode(&v); err != nil {
			return err
		}
		return h(ctx, e, v)
	}, opts...)
}

// AppID returns the id of the app the router belongs to.
func (r *Router) AppID() string { return r.app }

// Method returns the handler for method.
func (r *Router) Method(method string) (Handler, bool) {
	h, ok := r.methods[method]
	return h, ok
}

// Methods returns the registered method names, sorted.
func (r *Router) Methods() []string {
	out := make([]string, 0, len(r.methods))
	for m := range r.methods {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// Subscriptions returns the registered topic handlers in registration order.
func (r *Router) Subscriptions() []Subscription { return append([]Subscription(nil), r.subs...) }

// jsonErrorText keeps decode errors short and free of Go type internals
// where the standard library allows.
func jsonErrorText(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}
