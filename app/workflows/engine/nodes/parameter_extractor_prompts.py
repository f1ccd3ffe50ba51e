"""The prompts of `parameter-extractor`: function calling, prompt mode (chat) and prompt mode (completion).

Sluice's own wording with the structure of Dify's (graphon ``parameter_extractor/prompts.py``): the same
sections, tags, placeholders and few-shot examples in the same places, because models and DSL authors'
instructions were tuned against that structure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

TOOL_NAME = "extract_parameters"
TOOL_DESCRIPTION = "Extract parameters from the natural language text"

FUNCTION_CALLING_SYSTEM = f"""You are a careful assistant that pulls structured information out of text \
according to the criteria you are given. Follow the guidelines below so that every answer is consistent and \
accurate.
### Task
Always answer by calling the `{TOOL_NAME}` function with the right arguments. Extract only what the context \
supports and what the criteria ask for.
### Memory
The conversation so far between the human and the assistant is inside <histories> tags:
<histories>
{{histories}}
</histories>
### Instructions:
More guidance follows; keep to it as closely as you can:
<instruction>
{{instruction}}
</instruction>
Steps:
1. Read the conversation inside the <histories> tags.
2. Extract the information the criteria ask for; when the text holds several matching values, give all of them.
3. Shape the result with the function and the arguments it defines.
4. Call the `{TOOL_NAME}` function with those arguments to produce the structured output.
5. Never put XML tags in your output.
### Example
If, say, the task is to extract a person's name and what they ask for, call the function the way the \
examples do and keep the same structure.
### Final Output
Answer with a well-formed function call whose arguments are JSON, without XML tags, as in the examples."""

FUNCTION_CALLING_USER = f"""Extract structured information from the context inside <context></context> XML \
tags by calling the function {TOOL_NAME} with arguments that follow the structure inside \
<structure></structure> XML tags.
<context>
{{content}}
</context>

<structure>
{{structure}}
</structure>"""

PROMPT_MODE_SYSTEM = """Always follow the instructions and answer with one valid JSON object.
The structure that JSON object must have comes with the text to convert.

### Memory
The conversation so far between the human and the assistant is inside <histories></histories> XML tags.
<histories>
{histories}
</histories>

### Instructions:
More guidance follows; keep to it as closely as you can.
<instructions>
{instruction}
</instructions>"""

PROMPT_MODE_USER = """### Structure
The JSON object must follow this structure.
<structure>
{structure}
</structure>

### Text to be converted to JSON
Convert the text inside <text></text> XML tags into a JSON object.
<text>
{text}
</text>"""

COMPLETION_PROMPT = """### Instructions:
More guidance follows; I keep to it as closely as I can.
<instructions>
{instruction}
</instructions>

### Extract parameter Workflow
I extract the information described inside the <information to be extracted> tags from the input text; \
each item gives its 'type', 'description' and whether it is 'required'.
<information to be extracted>
{structure}
</information to be extracted>

Step 1: Read the input carefully and understand the structure the output must have.
Step 2: Pull the parameters out of the text, guided by each item's name and description.
Step 3: Put the extracted parameters into a JSON object shaped as the structure says.
Step 4: Make sure the JSON object is well-formed and valid. No XML tags: the output is the JSON object alone.

### Memory
The conversation so far between the human and the assistant is inside <histories></histories> XML tags.
<histories>
{histories}
</histories>

### Structure
The output always has this shape.
{"property1": "text taken from the input", "property2": "text taken from the input"}

### Input Text
Inside <text></text> XML tags is the text whose parameters I extract into a JSON object.
<text>
{text}
</text>

### Answer
I always output one valid JSON object and nothing else.
```JSON"""


def _example_schema(name: str, description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": "string", "description": description, "required": True}},
        "required": [name],
    }


#: Two worked examples, shown to the model before the real text (same content as Dify's, own wording).
EXAMPLES: list[dict[str, Any]] = [
    {
        "query": "How warm will it be in SF today?",
        "schema": _example_schema("location", "The place to look up the weather for"),
        "arguments": {"location": "San Francisco"},
        "reasoning": "I must always call the function with the right arguments; here that is the location.",
    },
    {
        "query": "I'd love a slice of apple pie.",
        "schema": _example_schema("food", "The food to eat"),
        "arguments": {"food": "apple pie"},
        "reasoning": "I must always call the function with the right arguments; here that is the food.",
    },
]
TOOL_RESULT = "Correct: the function was called with the right arguments."
AFTER_TOOL = "The parameters are extracted; moving on."

_PLACEHOLDER = re.compile(r"\{(histories|instruction|structure|text|content)\}")


def fill(template: str, **values: str) -> str:
    """Put the values into their ``{name}`` placeholders in one pass (a value is never read again, so a
    query that contains ``{text}`` stays as written)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def function_calling_messages(
    query: str, instruction: str, histories: str, schema: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """System prompt, the two examples as real tool-call exchanges, then the text to extract from."""
    messages: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": fill(FUNCTION_CALLING_SYSTEM, histories=histories, instruction=instruction),
        }
    ]
    for number, example in enumerate(EXAMPLES, start=1):
        call_id = f"call_example_{number}"
        call = {"name": TOOL_NAME, "arguments": json.dumps(example["arguments"])}
        messages += [
            {"role": "user", "content": example["query"]},
            {
                "role": "assistant",
                "content": example["reasoning"],
                "tool_calls": [{"id": call_id, "type": "function", "function": call}],
            },
            {"role": "tool", "tool_call_id": call_id, "content": TOOL_RESULT},
            {"role": "assistant", "content": AFTER_TOOL},
        ]
    user = fill(FUNCTION_CALLING_USER, content=query, structure=json.dumps(schema))
    messages.append({"role": "user", "content": user})
    return messages


def extraction_tool(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "parameters": dict(schema)},
    }


def prompt_mode_messages(
    query: str, instruction: str, histories: str, schema: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """System prompt, the two examples (answers are bare JSON objects), then the text to convert."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": fill(PROMPT_MODE_SYSTEM, histories=histories, instruction=instruction)}
    ]
    for example in EXAMPLES:
        structure = json.dumps(example["schema"])
        messages += [
            {"role": "user", "content": fill(PROMPT_MODE_USER, structure=structure, text=example["query"])},
            {"role": "assistant", "content": json.dumps(example["arguments"])},
        ]
    messages.append(
        {"role": "user", "content": fill(PROMPT_MODE_USER, structure=json.dumps(schema), text=query)}
    )
    return messages


def completion_messages(
    query: str, instruction: str, histories: str, schema: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One prompt that ends in an opened ```JSON fence, sent as one user message."""
    text = fill(
        COMPLETION_PROMPT,
        instruction=instruction,
        structure=json.dumps(schema),
        histories=histories,
        text=query,
    )
    return [{"role": "user", "content": text}]
