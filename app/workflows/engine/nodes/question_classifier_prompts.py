"""The prompts of `question-classifier`, chat and completion.

Sluice's own wording with the structure of Dify's (graphon ``question_classifier/template_prompts.py``):
the same sections (Job Description, Task, Format, Constraint, Memory), two worked examples of the same kind, and the
same input object ``{"input_text": [...], "categories": [...], "classification_instructions": [...]}`` with
the text placed raw inside the string literal, as Dify does (models are used to it; it is not escaped).
"""

from __future__ import annotations

import json
from typing import Any

_SECTIONS = """### Job Description
You are a text classification engine: you read a text and decide which of the given categories it belongs to.
### Task
Assign exactly one category to the input text and return only that one. Also pick out the keywords of the \
text that relate to the category you chose.
### Format
The text to classify is in the variable input_text. The categories are a list in the variable categories, \
each with the two fields category_id and category_name. classification_instructions may add guidance that \
makes the classification more accurate.
### Constraint
Reply with the JSON object alone and nothing else."""

_MEMORY = """### Memory
The conversation so far between the human and the assistant is inside <histories></histories> XML tags.
<histories>
{histories}
</histories>"""

SYSTEM = f"{_SECTIONS}\n{_MEMORY}\n"

_EXAMPLES: list[dict[str, Any]] = [
    {
        "input": "Your team sorted out my problem quickly and everyone I spoke to was really kind.",
        "categories": [
            {"category_id": "0b7d3a52-6c1e-4c55-9a57-2f1f1c2e8a01", "category_name": "Customer Service"},
            {"category_id": "5e2c9f3d-2a44-4f0e-8d6b-7c1a9b3e4f02", "category_name": "Satisfaction"},
            {"category_id": "9a41d6e8-3b7f-4d21-a5c9-0e6f8d2b1c03", "category_name": "Sales"},
            {"category_id": "c3f85b17-8d92-4e6a-b0f4-5a7e2c9d6e04", "category_name": "Product"},
        ],
        "instructions": ["classify the text by the customer feedback it gives"],
        "answer": {
            "keywords": ["sorted out", "quickly", "team", "kind"],
            "category_id": "0b7d3a52-6c1e-4c55-9a57-2f1f1c2e8a01",
            "category_name": "Customer Service",
        },
    },
    {
        "input": "The service was poor and the food took ages to arrive.",
        "categories": [
            {"category_id": "4d9e2b6a-1f3c-4a87-9e52-b8c7d0a1f305", "category_name": "Food Quality"},
            {"category_id": "e7a1c5f9-6b2d-4c38-8f04-3d9e6a2b7c06", "category_name": "Experience"},
            {"category_id": "2f6b8d3e-9c5a-4e17-b6d2-a0f4c8e1d907", "category_name": "Price"},
        ],
        "instructions": [],
        "answer": {
            "keywords": ["service was poor", "took ages", "food"],
            "category_id": "e7a1c5f9-6b2d-4c38-8f04-3d9e6a2b7c06",
            "category_name": "Experience",
        },
    },
]


def _example_input(example: dict[str, Any], separator: str) -> str:
    return (
        f'{{"input_text": {json.dumps([example["input"]])},{separator}'
        f'"categories": {json.dumps(example["categories"], separators=(",", ":"))},{separator}'
        f'"classification_instructions": {json.dumps(example["instructions"])}}}'
    )


def _input_object(text: str, categories: str, instruction: str, separator: str) -> str:
    return (
        f'{{"input_text": ["{text}"],{separator}"categories": {categories},{separator}'
        f'"classification_instructions": ["{instruction}"]}}'
    )


def chat_messages(
    text: str, categories: list[dict[str, str]], instruction: str, histories: str
) -> list[dict[str, Any]]:
    """System prompt, the two examples as user/assistant turns, then the real input."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM.replace("{histories}", histories)}]
    for example in _EXAMPLES:
        answer = json.dumps(example["answer"])
        messages += [
            {"role": "user", "content": _example_input(example, "\n")},
            {"role": "assistant", "content": f"```json\n{answer}\n```"},
        ]
    categories_json = json.dumps(categories, ensure_ascii=False)
    messages.append({"role": "user", "content": _input_object(text, categories_json, instruction, "\n")})
    return messages


def completion_messages(
    text: str, categories: list[dict[str, str]], instruction: str, histories: str
) -> list[dict[str, Any]]:
    """One prompt: the sections, the examples inside <example> tags, the histories, then the real input."""
    lines = [
        _SECTIONS,
        "### Example",
        "A worked example between a human and the assistant, inside <example></example> XML tags.",
        "<example>",
    ]
    for example in _EXAMPLES:
        lines.append(f"User:{_example_input(example, ' ')}")
        lines.append(f"Assistant:{json.dumps(example['answer'])}")
    lines += ["</example>", _MEMORY.replace("{histories}", histories), "### User Input"]
    lines.append(_input_object(text, json.dumps(categories, ensure_ascii=False), instruction, " "))
    lines.append("### Assistant Output")
    return [{"role": "user", "content": "\n".join(lines) + "\n"}]
