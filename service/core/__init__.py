"""The domain layer: the service's rules, one module per capability.

A domain function takes a connection (or, where it does slow work without one, the request's
connection source) and plain values, owns its transaction boundaries, and raises the errors of
`core.errors`, which `service.errors` turns into the API's envelope. It knows nothing of HTTP.
"""
