"""The customer without a terminal: the join window, the Spanish dialog and the indicator.

Every part is real: the broker on 127.0.0.1 with a SQLite file, a fresh Xvfb, the `rsb-agent`
process started with no code (as a downloaded agent is), driven only by xdotool, as a customer
at the keyboard would drive it, and an engineer's `rsb_viewer` client that must receive and
decrypt the frames. The agent logs every text its windows show (``RSB_AGENT_LOG=debug``,
"shown NAME: ..."); the test reads what the customer reads from there, and finds the windows
themselves with `xdotool search`.
"""

from __future__ import annotations

import asyncio

import pytest

from agent_client.texts import words_in
from broker.types import Role
from rsb_viewer.client import ViewerClient, ViewerClosed
from tests.conftest import REPO, Broker
from tests.integration.agent_harness import AgentProcess, agent_command, eventually_async
from tests.integration.conftest import WAIT_UNIT, XvfbServer
from tests.integration.test_api_input import CASE

pytestmark = pytest.mark.display

LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


async def start_agent(args: list[str], xvfb: XvfbServer, **env: str) -> AgentProcess:
    """`rsb-agent ARGS` on the test display, logging what its windows show."""
    base = {k: v for k, v in xvfb.env.items() if k not in LOCALE_VARIABLES}
    proc = await asyncio.create_subprocess_exec(
        *agent_command(),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=REPO,
        env={**base, "PYTHONUNBUFFERED": "1", "RSB_AGENT_LOG": "debug", **env},
    )
    return AgentProcess(proc)


async def xdotool(xvfb: XvfbServer, *args: str) -> str | None:
    done = await asyncio.create_subprocess_exec(
        "xdotool", *args, env=xvfb.env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await done.communicate()
    return out.decode() if done.returncode == 0 and out.strip() else None


async def window(xvfb: XvfbServer, name: str, what: str) -> str:
    """The id of the visible window whose title matches `name`, once there is one."""
    found = await eventually_async(
        lambda: xdotool(xvfb, "search", "--onlyvisible", "--name", name), timeout=15, what=what
    )
    return found.split()[0]


async def keys(xvfb: XvfbServer, window_id: str, *names: str) -> None:
    """Point into the window (keyboard focus follows the pointer without a window manager),
    then press `names`."""
    await xdotool(xvfb, "mousemove", "--window", window_id, "8", "8")
    await xdotool(xvfb, "key", "--delay", "60", *names)


async def type_text(xvfb: XvfbServer, text: str) -> None:
    await xdotool(xvfb, "type", "--delay", "40", text)


async def new_session(broker: Broker, rita: dict[str, str]) -> dict[str, str]:
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=rita, json=CASE)
    session: dict[str, str] = await broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=rita
    )
    session["case_number"] = case["number"]
    return session


async def test_a_code_typed_into_the_window_joins_and_the_dialog_asks_in_spanish(
    broker: Broker, xvfb: XvfbServer
) -> None:
    rita = await broker.staff("rita", Role.RSE, "Rita Reyes")
    session = await new_session(broker, rita)
    spent = await new_session(broker, rita)
    await broker.call("POST", "/api/v1/join", status=200, json={"code": spent["code"]})
    url = f"http://127.0.0.1:{broker.client.port}"
    agent = await start_agent(
        ["--broker", url, "--display", xvfb.display, "--source", "test-pattern"],
        xvfb,
        LANG="es_ES.UTF-8",
    )
    viewer = ViewerClient(url, rita["Authorization"][7:], session["id"])
    try:
        # The window opens in the locale's language, the broker's address filled in.
        await agent.wait_for("shown join: Escriba el código de sesión")
        join = await window(xvfb, "^Asistencia remota$", "the join window")
        # The EN/ES switch comes after Connect and Cancel; it re-words the window both ways.
        await keys(xvfb, join, "Tab", "Tab", "Tab", "Tab", "space")
        await agent.wait_for("shown join: Type the session code the engineer gave you")
        await keys(xvfb, join, "Tab", "space")
        await agent.wait_for("shown join: Escriba el código de sesión", count=2)
        await keys(xvfb, join, "Tab")  # round to the code field

        # A code of the wrong length never leaves the machine.
        await type_text(xvfb, "12 34")
        await keys(xvfb, join, "Return")
        await agent.wait_for("shown join message: Este código tiene 4 cifras")
        await keys(xvfb, join, *["BackSpace"] * 5)
        # A used code is refused by the broker (410), in Spanish, and the window stays.
        await type_text(xvfb, spent["code"])
        await keys(xvfb, join, "Return")
        await agent.wait_for("shown join message: Este código ya se ha usado o ha caducado")
        # The refused code is selected: typing the right one replaces it.
        await type_text(xvfb, session["code"])
        await keys(xvfb, join, "Return")
        await agent.wait_for(
            f"shown banner: Asistencia remota para el caso {session['case_number']}"
        )

        await viewer.connect()
        await viewer.wait_for(lambda c: c.session.agent_key is not None, 10 * WAIT_UNIT)
        index = await agent.wait_for("shown question: Remote Support pide permiso para VER")
        question = agent.lines[index]
        assert "Técnico:   Rita Reyes (L2, técnico de asistencia remota)" in question
        spanish = words_in(" ".join(viewer.readback.words), "es")
        digits = viewer.readback.digits
        assert f"Palabras:  {spanish}  ({digits[:3]} {digits[3:]})" in question
        assert "compare las cifras" in question
        dialog = await window(xvfb, "^Asistencia remota$", "the consent dialog")
        # Tab reaches the first enabled button, Permitir (Allow).
        await keys(xvfb, dialog, "Tab", "space")
        picture = await viewer.wait_first_keyframe(15 * WAIT_UNIT)
        assert picture.shape[2] == 4 and picture.any()  # decrypted pixels of the pattern

        # While Rita can see, the indicator names her, above everything else.
        await agent.wait_for("shown indicator: Viendo su pantalla: Rita Reyes (L2)")
        indicator = await window(xvfb, "compartiendo$", "the indicator")
        # Its first button (nobody controls, so no "Quitar el control") stops sharing.
        await keys(xvfb, indicator, "Tab", "space")
        await viewer.wait_for(
            lambda c: c.state is not None and c.slot not in c.state.viewing_slots,
            10 * WAIT_UNIT,
        )
        await agent.wait_for("shown indicator: (closed)")
        assert await xdotool(xvfb, "search", "--onlyvisible", "--name", "compartiendo$") is None
        await agent.wait_for("shown notice: Rita Reyes ya no puede ver su pantalla.")

        # "Terminar la sesión" ends it for everyone; the agent exits normally.
        await keys(xvfb, dialog, "Tab", "Tab", "Tab", "Tab", "space")
        with pytest.raises(ViewerClosed) as closed:
            await viewer.wait_for(lambda c: False, 10 * WAIT_UNIT)
        assert closed.value.code == 4103
        assert await asyncio.wait_for(agent.proc.wait(), 10 * WAIT_UNIT) == 0, agent.output
    finally:
        await viewer.close()
        if agent.proc.returncode is None:
            agent.proc.kill()
        await agent.proc.wait()
    assert session["code"] not in agent.output and spent["code"] not in agent.output


async def test_the_indicator_says_who_controls_and_its_button_takes_control_back(
    broker: Broker, xvfb: XvfbServer
) -> None:
    rita = await broker.staff("rita", Role.RSE, "Rita Reyes")
    session = await new_session(broker, rita)
    url = f"http://127.0.0.1:{broker.client.port}"
    agent = await start_agent(
        ["join", session["code"], "--broker", url, "--display", xvfb.display]
        + ["--source", "test-pattern", "--ui", "tk"],
        xvfb,
        LANG="en_GB.UTF-8",
    )
    viewer = ViewerClient(url, rita["Authorization"][7:], session["id"])
    try:
        dialog = await window(xvfb, "^Remote support$", "the consent dialog")
        await viewer.connect()
        await agent.wait_for("shown question: Remote Support asks for permission to SEE")
        await keys(xvfb, dialog, "Tab", "space")
        await agent.wait_for("shown indicator: Being watched by Rita Reyes (L2)")
        await viewer.request_control("to fix the printer")
        await agent.wait_for("shown question: Remote Support asks for permission to CONTROL")
        # The keyboard is still on Allow from the first answer (nothing moves it there: a
        # question popping up must never take a key meant for another window as a yes).
        await keys(xvfb, dialog, "space")
        await agent.wait_for(
            "shown indicator: Rita Reyes is controlling your computer | "
            "Being watched by Rita Reyes (L2)"
        )
        await viewer.wait_for(
            lambda c: c.state is not None and c.state.controller_slot == c.slot, 10 * WAIT_UNIT
        )
        indicator = await window(xvfb, "^Your screen is shared$", "the indicator")
        # "Stop control" is first now; Rita keeps seeing, without control.
        await keys(xvfb, indicator, "Tab", "space")
        await viewer.wait_for(
            lambda c: c.state is not None and c.state.controller_slot is None, 10 * WAIT_UNIT
        )
        await agent.wait_for("shown indicator: Being watched by Rita Reyes (L2)", count=2)
        assert viewer.slot in (viewer.state.viewing_slots if viewer.state else ())
        # "Stop sharing" (now first again): the indicator goes with the last viewer.
        await keys(xvfb, indicator, "Tab", "space")
        await agent.wait_for("shown indicator: (closed)")
        await viewer.wait_for(
            lambda c: c.state is not None and c.slot not in c.state.viewing_slots,
            10 * WAIT_UNIT,
        )
        assert await xdotool(xvfb, "search", "--onlyvisible", "--name", "shared$") is None
        # SIGTERM ends the session like "End session": exit 0, the window closes by itself.
        agent.proc.terminate()
        assert await asyncio.wait_for(agent.proc.wait(), 10 * WAIT_UNIT) == 0, agent.output
    finally:
        await viewer.close()
        if agent.proc.returncode is None:
            agent.proc.kill()
        await agent.proc.wait()
