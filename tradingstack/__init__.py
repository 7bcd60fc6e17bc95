"""The reference trading stack: order gateway, leader-elected matching engines, Redis and ZooKeeper."""
