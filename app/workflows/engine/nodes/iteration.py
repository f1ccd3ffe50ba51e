"""`iteration` (and `iteration-start`): runs its sub-graph once per item of a list (nodes spec §3).

The configuration is checked here; the rounds are run by ``engine.containers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from app.workflows.engine.nodes.base import ContainerNode, ContainerStartNode, convert, selector

ERROR_MODES = ("terminated", "continue-on-error", "remove-abnormal-output")


class IterationConfig(msgspec.Struct, kw_only=True):
    iterator_selector: list[str] | None = None
    output_selector: list[str] | None = None
    start_node_id: str = ""
    is_parallel: bool = False
    parallel_nums: int = 10
    error_handle_mode: Literal["terminated", "continue-on-error", "remove-abnormal-output"] = "terminated"
    flatten_output: bool = True


class IterationNode(ContainerNode):
    type = "iteration"

    def configure(self, data: Mapping[str, Any]) -> None:
        config: IterationConfig = convert(data, IterationConfig, self)
        iterator = selector(config.iterator_selector)
        output = selector(config.output_selector)
        if iterator is None:
            raise self.fail("iterator_selector is required")
        if output is None:
            raise self.fail("output_selector is required")
        if config.parallel_nums < 1:
            raise self.fail("parallel_nums must be at least 1")
        self.iterator, self.output = iterator, output
        self.start_node_id = config.start_node_id
        self.is_parallel, self.parallel_nums = config.is_parallel, config.parallel_nums
        self.error_mode, self.flatten = config.error_handle_mode, config.flatten_output


class IterationStartNode(ContainerStartNode):
    type = "iteration-start"
