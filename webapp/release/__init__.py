"""Release control: which versions serve, traffic split, live statistics."""
