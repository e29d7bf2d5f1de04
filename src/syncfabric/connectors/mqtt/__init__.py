"""MQTT brokers (plant MES, machine gateways): QoS 1 subscriptions in a persistent session, acknowledged only
after the store committed what they carried."""
