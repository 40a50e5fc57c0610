"""datagen — the training dataset: workspace, plan, rules, knowledge, validation, dedup, store, review, export.

This module is the package's public surface; everything else is private to datagen.
"""
from __future__ import annotations

from datagen.brief import build_brief
from datagen.catalog import coverage, get_example, list_examples, plan, snapshot_hash
from datagen.config import DatasetConfig, env_overrides, setting_problems
from datagen.database import CopyResult, MigrateResult, copy_database, migrate_database
from datagen.desk import (EditResult, Neighbour, QueueFilter, QueueItem, QueuePage, Revision, adjacent_example, decide,
                          edit_example, example_generators, example_revisions, example_version, nearest_examples,
                          queue_page, rejection_reasons)
from datagen.errors import (DatagenError, ExampleNotFound, PathOutsideWorkspace, ReviewConflict, UnknownCategory,
                            WorkspaceNotFound)
from datagen.export import export
from datagen.failures import describe_failure
from datagen.generate import GenerateResult, generate
from datagen.ingest import import_file, submit
from datagen.judge import Judge, JudgeError
from datagen.knowledge import add_knowledge, list_knowledge
from datagen.knowledge import remap as remap_knowledge
from datagen.knowledge import tag as tag_knowledge
from datagen.review import judge_pending, review_example
from datagen.rules import check_rules, load_rules
from datagen.schema import (Brief, Category, CategoryCoverage, Chunk, Coverage, Example, ExamplePage, ExportResult,
                            Message, ReviewEvent, Rule, RuleResult, StoredExample, ToolCall, Verdict)
from datagen.validate import validate_example
from datagen.workspace import Workspace, find_workspace, init_workspace, load_workspace, workspace_root

__all__ = [
    "CopyResult", "MigrateResult", "copy_database", "migrate_database",
    "EditResult", "Neighbour", "QueueFilter", "QueueItem", "QueuePage", "ReviewConflict", "Revision",
    "adjacent_example", "decide", "edit_example", "example_generators", "example_revisions", "example_version",
    "nearest_examples", "queue_page", "rejection_reasons", "describe_failure",
    "Brief", "Category", "CategoryCoverage", "Chunk", "Coverage", "DatagenError", "DatasetConfig", "Example",
    "ExampleNotFound", "ExamplePage", "ExportResult", "GenerateResult", "Judge", "JudgeError", "Message",
    "PathOutsideWorkspace",
    "ReviewEvent", "Rule", "RuleResult", "StoredExample", "ToolCall", "UnknownCategory", "Verdict", "Workspace",
    "WorkspaceNotFound", "add_knowledge", "build_brief", "check_rules", "coverage", "export", "find_workspace",
    "generate", "get_example", "import_file", "init_workspace", "judge_pending", "list_examples",
    "list_knowledge", "load_rules", "load_workspace", "plan", "remap_knowledge", "review_example", "snapshot_hash",
    "submit", "tag_knowledge", "validate_example", "env_overrides", "setting_problems", "workspace_root",
]
