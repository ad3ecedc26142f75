// The policy module's public surface, for engines and the configuration loader. Engines import
// from here; nothing in policy/ imports an engine, a socket or the store (docs/policy.md).
export { policySchema, compilePolicy, parseDuration, ruleApplies, EMPTY_POLICY, PolicyCompileError } from './schema.js';
export type { PolicyConfig, PolicyInput, CompiledPolicy, CompiledRule, CompiledBlockRule, CompiledReviewRule, CompiledMaskRule, CompiledConditions } from './schema.js';
export { analyzeSql } from './sql.js';
export type { SqlAnalysis, StatementAnalysis, NestedStatement, NestedVia, RelationRef, FunctionRef, CopyInfo } from './sql.js';
export { createSqlAnalyzer, sqlShape } from './shape.js';
export type { SqlAnalyzer } from './shape.js';
export { evaluate, BUILTIN_RULES } from './evaluate.js';
export type { Decision, Verdict, RuleHit, ReviewRequirement, SqlAction, EvaluationContext } from './evaluate.js';
export { PreparedStatements } from './prepared.js';
export type { PreparedStatement } from './prepared.js';
export { DETECTOR_NAMES, findSpans } from './mask/detectors.js';
export type { DetectorName, Span } from './mask/detectors.js';
export { maskValue, REDACTED, strongerStrategy } from './mask/strategies.js';
export type { MaskStrategy, DetectPlan, ValueMask, MaskStats } from './mask/strategies.js';
export { createRowMasker, decodeRowDescription, applyResultFormats, RowMaskError } from './mask/dataRow.js';
export type { RowColumn, RowMaskPlan, RowMasker, RowMaskStats } from './mask/dataRow.js';
export { maskCopyLine, createCopyMasker, CopyMaskError } from './mask/copy.js';
export type { CopyMaskOptions } from './mask/copy.js';
export { maskNoticeFields, WITHHELD } from './mask/notices.js';
export type { NoticeField } from './mask/notices.js';
export { maskPolicyFor, planRowMask, planRowMaskWith, tableOidsToResolve, planCopyMask, cachingResolver } from './mask/plan.js';
export type { MaskPolicy, ColumnNameResolver, ResolvedRelation, ColumnSource, CopyMaskPlan } from './mask/plan.js';
export { viewColumnSources } from './mask/viewLineage.js';
export { analyzeLineage, alignColumns } from './mask/lineage.js';
export type { StatementLineage, LineageAnswer, Needs } from './mask/lineage.js';
export { columnMask, readsUntracedData } from './mask/lineageModel.js';
export type { Lineage, OutputColumn, RelationFacts, QualifiedRef, LineageCatalog, FunctionKind } from './mask/lineageModel.js';
