"""The screen loop on its own, with a real encoder and test pattern and a recording sink."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent_client.capture import Frame, TestPatternSource
from agent_client.screen_loop import ScreenLoop
from rsb_protocol.framing import FrameType


class FailingOnce(TestPatternSource):
    """The test pattern, except that the first grab fails as a busy X server's can."""

    def __init__(self) -> None:
        super().__init__(128, 96)
        self.failures = 0

    def grab(self) -> Frame:
        if self.failures == 0:
            self.failures += 1
            raise OSError("XShmGetImage failed")
        return super().grab()


class Sink:
    """Records what the loop sends; frames are always allowed."""

    def __init__(self) -> None:
        self.sent: list[FrameType] = []
        self.first = asyncio.get_running_loop().create_future()

    def frames_allowed(self) -> bool:
        return True

    def send_frame(self, frame_type: FrameType, payload: bytes) -> tuple[int, int]:
        self.sent.append(frame_type)
        if not self.first.done():
            self.first.set_result(frame_type)
        return 1, len(self.sent)


async def test_a_failed_capture_is_retried_with_a_keyframe_not_the_end_of_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source, sink = FailingOnce(), Sink()
    with ThreadPoolExecutor(max_workers=1) as executor:
        screen = ScreenLoop(source, sink, executor=executor, max_fps=60)
        task = asyncio.create_task(screen.run())
        # Whichever comes first: the loop's first frame, or the loop's end.
        await asyncio.wait({task, sink.first}, return_when=asyncio.FIRST_COMPLETED)
        assert not task.done(), f"the loop ended: {task.exception()!r}"
        assert sink.first.result() is FrameType.KEYFRAME
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert source.failures == 1
    assert "screen capture failed" in caplog.text
