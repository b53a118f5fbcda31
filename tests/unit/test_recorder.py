"""The model's reply is redacted where it enters: its text and the tool arguments it made up."""

from __future__ import annotations

from langchain_core.messages import AIMessage
from sre_agent_tools import ToolResult

from sre_agent.recorder import clean_reply

SECRET = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


def test_a_secret_the_model_writes_or_passes_to_a_tool_does_not_get_in():
    reply = AIMessage(
        content=f"the token is {SECRET}",
        tool_calls=[{"name": "promql_query", "args": {"query": f'up{{t="{SECRET}"}}'}, "id": "c1"}],
    )
    clean = clean_reply(reply)
    assert SECRET not in str(clean.content)
    assert SECRET not in str(clean.tool_calls)
    assert clean.tool_calls[0]["name"] == "promql_query" and clean.tool_calls[0]["id"] == "c1"


def test_a_plain_reply_is_left_as_it_was():
    reply = AIMessage(content="restarts=9 since 03:12", tool_calls=[])
    assert clean_reply(reply) is reply


def test_a_tool_result_is_redacted_where_the_tool_makes_it():
    result = ToolResult("ok", f"env DB_PASSWORD=hunter2-{SECRET}\nready")
    assert SECRET not in result.text and "hunter2" not in result.text
    assert result.text.endswith("\nready") and result.render().startswith("status: ok\n")
