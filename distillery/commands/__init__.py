"""One module per command group; each has `register(app)` and keeps heavy imports (torch, faust) inside commands."""
