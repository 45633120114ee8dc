"""Planned maintenance: `halb drain HOST` moves every VIP off HOST, `halb undrain` ends it.

No config change and no reload: a root-owned flag file next to the track script makes the
script report the host down, so its priority falls below every peer and a peer takes each
VIP over while HOST's HAProxy still answers (a handover with both sides up). `flag` names
the file, `judge` decides from a status report (pure), `run` does the work.
"""
