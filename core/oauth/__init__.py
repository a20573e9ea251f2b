"""OAuth2 authorisation server for partner tools (issue #8): HQ client registry, consent,
grants and opaque tokens that authenticate `/v1/tenants/{tenant}/...` like API keys."""
