"""Host-level network faults without a proxy (nftables, here or over SSH): `host.partition`, `host.reject`,
`host.packet_loss`, `host.bandwidth`; what they share is in common.py."""
