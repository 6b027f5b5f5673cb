"""The protocol both sides speak: the simulated back end's XML messages, signed files, pages and
raw-TCP lines, split by job (`xml_messages`, `downloads`, `lines`, `pages`, on `xmldoc` and `fields`).

The cloud builds and parses them as the server, the device as the client; neither side's package
is needed to read a message of the other. Import `proxy_lab.protocol.messages`, which re-exports
them all (docs/cloud-protocol.md describes the exchanges).
"""
