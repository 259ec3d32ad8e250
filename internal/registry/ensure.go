package registry

import (
	"context"
	"fmt"

	"github.com/wharfhq/wharf/internal/image"
)

// PullPolicy is Kubernetes' imagePullPolicy.
type PullPolicy string

const (
	PullAlways       PullPolicy = "Always"
	PullIfNotPresent PullPolicy = "IfNotPresent"
	PullNever        PullPolicy = "Never"
)

// EnsureImage makes ref present in store according to policy and returns it: Never only looks
// locally, IfNotPresent pulls when missing, Always pulls (a pull that finds the image up to date
// fetches only the manifest).
func (c *Client) EnsureImage(ctx context.Context, store image.API, ref string, policy PullPolicy, o PullOptions) (*image.Image, error) {
	named, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	switch policy {
	case PullNever:
		img, err := store.Resolve(named.String())
		if err != nil {
			return nil, &Error{Kind: KindNotFound, Err: err, Msg: fmt.Sprintf("Container image %q is not present with pull policy of Never", ref)}
		}
		return img, nil
	case PullIfNotPresent, "":
		if img, err := store.Resolve(named.String()); err == nil {
			return img, nil
		}
	case PullAlways:
	default:
		return nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("unknown pull policy %q", policy)}
	}
	return c.Pull(ctx, store, ref, o)
}
