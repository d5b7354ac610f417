package conformance

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
)

// HTTPDriver drives a host through its HTTP API:
// POST {BaseURL}/v1/apps/{app}/methods/{method}.
type HTTPDriver struct {
	BaseURL string
	Client  *http.Client // default http.DefaultClient
}

// Call implements Driver.
func (d HTTPDriver) Call(ctx context.Context, app, method string, body []byte) (int, []byte, error) {
	u := d.BaseURL + "/v1/apps/" + url.PathEscape(app) + "/methods/" + url.PathEscape(method)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	c := d.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
