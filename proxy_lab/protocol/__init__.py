"""The protocol both sides speak: the simulated back end's XML messages, signed files and raw-TCP greetings.

The cloud builds and parses them as the server, the device as the client; neither side's package
is needed to read a message of the other (docs/cloud-protocol.md describes the exchanges).
"""
