"""Pure business rules of metering and billing: no I/O, no framework. Money is integer fen."""
