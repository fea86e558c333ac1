"""The daemon's own reporting and operator servers (OPC UA, MQTT)."""
