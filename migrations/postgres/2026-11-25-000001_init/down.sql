DROP TABLE vpn_peers;
