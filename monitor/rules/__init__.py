"""Analysts' rules: the query language, entity gazetteers, the one-pass matcher, hot reload and rule tools.

Public API: load_rules, RuleSet, Rule, RuleWatcher, Explanation (RuleError is in monitor.errors,
RuleSettings in monitor.settings).
"""

from __future__ import annotations

from .evidence import Explanation
from .loader import load_rules
from .matcher import Rule, RuleSet
from .watch import RuleWatcher

__all__ = ["Explanation", "Rule", "RuleSet", "RuleWatcher", "load_rules"]
