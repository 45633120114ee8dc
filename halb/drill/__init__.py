"""The failover drill: client load, packet timestamps, faults, figures, timeline."""
