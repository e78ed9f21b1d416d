"""The screen-update payload both ends share: the agent writes it, the viewer reads and paints it.

``rsb_codec.wire`` is the byte layout of update and cursor payloads (pure ``struct``, no image
code). ``rsb_codec.decode`` paints an update's regions onto a frame buffer (``rsb_codec.frame``)
with numpy, simplejpeg and Pillow, all in the ``agent`` extra. Deciding what to send and
compressing it stay the agent's own business (``agent_client.encoder``), so the viewer needs
nothing from the agent package (docs/architecture.md).
"""
