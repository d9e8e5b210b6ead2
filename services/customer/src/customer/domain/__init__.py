"""Pure rules of the customer archive: identity validation, account lifecycle, tags. No I/O here."""
