// Function lengths of TypeScript sources, read with the TypeScript compiler's own parser: every function
// declaration, method, arrow function and function expression, with the lines it spans. A long function is
// where defects hide; the limit is checked by test/unit/function-length.test.ts.
import ts from 'typescript';

export interface FunctionSpan {
  file: string;
  name: string;
  line: number;
  lines: number;
  /** Its body is one object or array literal (a data table: long, but no logic). */
  data: boolean;
}

/** A function whose whole body returns one object or array literal. */
function isDataTable(node: ts.FunctionLikeDeclaration): boolean {
  let body: ts.Node | undefined = node.body;
  if (body && ts.isBlock(body)) {
    const [only, ...rest] = body.statements;
    if (!only || rest.length > 0 || !ts.isReturnStatement(only)) return false;
    body = only.expression;
  }
  while (body && ts.isParenthesizedExpression(body)) body = body.expression;
  return body !== undefined && (ts.isObjectLiteralExpression(body) || ts.isArrayLiteralExpression(body));
}

/** The name a function goes by: its own, its variable's or property's, else `(anonymous)`. */
function nameOf(node: ts.Node): string {
  const named = node as ts.Node & { name?: ts.Node };
  if (named.name && ts.isIdentifier(named.name)) return named.name.text;
  const parent = node.parent;
  if (
    parent &&
    (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent)) &&
    ts.isIdentifier(parent.name)
  )
    return parent.name.text;
  if (parent && ts.isCallExpression(parent))
    return `(callback of ${parent.expression.getText().slice(0, 40)})`;
  return '(anonymous)';
}

/** Every function-like node of one source text, outermost first, with the lines it spans. */
export function functionSpans(file: string, text: string): FunctionSpan[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: FunctionSpan[] = [];
  const visit = (node: ts.Node) => {
    if (
      ts.isFunctionDeclaration(node) ||
      ts.isMethodDeclaration(node) ||
      ts.isArrowFunction(node) ||
      ts.isFunctionExpression(node) ||
      ts.isConstructorDeclaration(node) ||
      ts.isGetAccessorDeclaration(node) ||
      ts.isSetAccessorDeclaration(node)
    ) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      out.push({
        file,
        name: nameOf(node),
        line: start + 1,
        lines: end - start + 1,
        data: isDataTable(node),
      });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The functions longer than `max` lines, data tables aside. */
export function longFunctions(files: ReadonlyMap<string, string>, max: number): FunctionSpan[] {
  return [...files].flatMap(([file, text]) =>
    functionSpans(file, text).filter((f) => f.lines > max && !f.data),
  );
}
