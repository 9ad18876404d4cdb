"""Analyzers: turn a trace into findings (what is slow, why, how much to gain) and metrics tables.

One analyzer per module, each a function ``analyze(ctx: AnalysisContext) -> AnalyzerResult``.
"""
