package browser

import (
	"context"
	"fmt"
	"time"

	"github.com/chromedp/chromedp"
)

// Tab is a plain tab without a virtual authenticator, for pages other than the FIDO2
// demo (e.g. cmd/rp-demo). Not safe for concurrent use.
type Tab struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// NewTab opens url in a new tab.
func (b *Browser) NewTab(ctx context.Context, url string) (*Tab, error) {
	tctx, cancel := chromedp.NewContext(b.ctx)
	t := &Tab{ctx: tctx, cancel: cancel}
	// As in NewPage: the first action creates the tab and must run on tctx itself.
	if err := chromedp.Do(tctx); err != nil {
		cancel()
		return nil, fmt.Errorf("browser: new tab: %w", err)
	}
	if err := t.Do(ctx, 30*time.Second, chromedp.Navigate(url)); err != nil {
		cancel()
		return nil, fmt.Errorf("browser: navigate %s: %w", url, err)
	}
	return t, nil
}

// Do runs chromedp steps in the tab, bounded by ctx and d.
func (t *Tab) Do(ctx context.Context, d time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	c, cancel := context.WithTimeout(t.ctx, d)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	return chromedp.Do(c, steps...)
}

// Get runs one chromedp action with a result in t, bounded by ctx and d (a function:
// methods cannot have type parameters).
func Get[T any](ctx context.Context, t *Tab, d time.Duration, a chromedp.Action[T]) (T, error) {
	c, cancel := context.WithTimeout(t.ctx, d)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	return chromedp.Run(c, a)
}

// Close closes the tab.
func (t *Tab) Close() { t.cancel() }
