"""The twin served as a plant over OPC UA or MQTT, for a daemon to drive."""
