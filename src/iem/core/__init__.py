"""Phase 1 of IEM as pure tensor functions: torch only, no I/O, no printing."""
