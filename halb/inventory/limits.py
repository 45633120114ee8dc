"""How much an inventory may hold."""

# Host names all patterns together may expand to (ranges, repeated group lines): far above
# any real inventory, far below what exhausts memory.
MAX_HOST_ENTRIES = 1_000_000
MAX_GROUP_DEPTH = 100  # [a:children] chains; real inventories nest a few levels
