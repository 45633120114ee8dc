"""Facts: what a host is like now. Each module pairs the remote command (an argv or a
fixed shell script) with the pure parser of its output; nothing here decides policy."""
