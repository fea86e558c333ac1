"""The kernel: site schema, contracts, errors and plant physics. Imported by every layer; imports none."""
