// XML in and out of libvirt with fast-xml-parser: attributes as `@_name`, text as `#text`, values as strings.
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';

/** A parsed XML element: child elements by tag (one or many), attributes as `@_name`, text as `#text`. */
export type XmlNode = { [key: string]: XmlValue };
export type XmlValue = string | XmlNode | XmlValue[];

const common = {
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  textNodeName: '#text',
} as const;

const parser = new XMLParser({
  ...common,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  ignoreDeclaration: true,
});

const builder = new XMLBuilder({ ...common, format: true, indentBy: '  ', suppressEmptyNode: true });

/** Parse XML; a syntax error is returned as `{ error, line }` instead of thrown. */
export function parseXml(text: string): { doc: XmlNode } | { error: string; line?: number } {
  const valid = XMLValidator.validate(text);
  if (valid !== true) return { error: valid.err.msg, line: valid.err.line };
  return { doc: parser.parse(text) as XmlNode };
}

/** Serialise a document (one root element). */
export function buildXml(doc: XmlNode): string {
  return builder.build(doc) as string;
}

/** The values under a key as a list (absent → [], one → [it]). */
export function asList(v: XmlValue | undefined): XmlValue[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** The element under a key (the first, when repeated), or undefined when absent or text. */
export function child(node: XmlNode | undefined, key: string): XmlNode | undefined {
  const first = asList(node?.[key])[0];
  return first !== undefined && typeof first === 'object' && !Array.isArray(first) ? first : undefined;
}

/** An attribute's value. */
export function attr(node: XmlNode | undefined, name: string): string | undefined {
  const v = node?.[`@_${name}`];
  return typeof v === 'string' ? v : undefined;
}

/** The text of an element given as a string or as `{#text}`. */
export function text(v: XmlValue | undefined): string | undefined {
  if (typeof v === 'string') return v;
  if (v && !Array.isArray(v) && typeof v['#text'] === 'string') return v['#text'];
  return undefined;
}

/** Append elements under a key, keeping those the template already has. */
export function appendChildren(node: XmlNode, key: string, items: XmlValue[]): void {
  if (items.length === 0) return;
  node[key] = [...asList(node[key]), ...items];
}
