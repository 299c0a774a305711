// Checks README.md and the guides in docs/ (not docs/api, which TypeDoc writes), offline:
//
// - every ```ts / ```js block type-checks against the package's own sources, with the repo's
//   tsconfig and `nexttoken` / `nexttoken/queue` mapped to index.ts / lib/queue, each block a
//   module of its own (ESM, so top-level `await` works). A ts block may leave out what the
//   guides' snippets take as given: the imports of `nexttoken`'s classes, and `model` (a loaded
//   `Gpt2`), `session` (a `Session`) and `prompt` (a string), declared for it when it uses them
//   without declaring them itself (PRELUDE). A block that cannot compile even so says why just
//   above it: `<!-- check: skip (the reason) -->`;
// - every relative link and image resolves to a file, and every `#anchor` to a heading of its
//   page (GitHub's slugs);
// - every `npm run <script>` names a script of package.json.
//
// Usage: node scripts/check-docs.mjs (npm run lint:docs). Exits 1 listing each problem as
// file:line.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import ts from 'typescript'

const root = resolve(import.meta.dirname, '..').replaceAll('\\', '/')
const pages = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
]

/** What a ts block may use without declaring it, and the line that declares it. */
const PRELUDE = {
  Gpt2: "import { Gpt2 } from 'nexttoken'",
  Tokenizer: "import { Tokenizer } from 'nexttoken'",
  Session: "import { Session } from 'nexttoken'",
  NexttokenError: "import { NexttokenError } from 'nexttoken'",
  AbortError: "import { AbortError } from 'nexttoken'",
  model: "declare const model: import('nexttoken').Gpt2",
  session: "declare const session: import('nexttoken').Session",
  prompt: 'declare const prompt: string',
}

const SKIP = /^<!-- check: skip \((.+)\) -->$/
const problems = []
const report = (page, line, message) => problems.push(`${page}:${line}: ${message}`)

/** A page's lines, split into code blocks and the prose around them. */
function parse(page) {
  const lines = readFileSync(join(root, page), 'utf8').split('\n')
  const blocks = []
  const prose = []
  let open = null
  lines.forEach((text, index) => {
    const line = index + 1
    const fence = /^(`{3,}|~{3,})\s*([\w-]*)/.exec(text)
    if (open) {
      const closing = text.trim()
      if (closing.startsWith(open.fence) && /^(`+|~+)$/.test(closing)) {
        blocks.push(open)
        open = null
      } else open.code.push(text)
    } else if (fence) {
      const before = lines.slice(0, index).findLast((previous) => previous.trim() !== '')
      const skip = before === undefined ? null : SKIP.exec(before.trim())
      open = { fence: fence[1], lang: fence[2], line, code: [], skipped: skip?.[1] }
    } else prose.push({ line, text })
  })
  if (open) report(page, open.line, 'code block never closed')
  return { lines, blocks, prose }
}

/** GitHub's anchor for a heading: its text lower-cased, punctuation dropped, spaces to hyphens. */
function slug(heading) {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`|\*\*/g, '')
    .trim()
    .toLowerCase()
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-')
}

function anchorsOf(parsed) {
  const anchors = new Set()
  const seen = new Map()
  for (const { text } of parsed.prose) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text)
    if (heading) {
      const base = slug(heading[1])
      const count = seen.get(base) ?? 0
      seen.set(base, count + 1)
      anchors.add(count === 0 ? base : `${base}-${count}`)
    }
    for (const [, id] of text.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(id)
  }
  return anchors
}

const parsedPages = new Map(pages.map((page) => [page, parse(page)]))
const anchorCache = new Map()
function anchors(page) {
  if (!anchorCache.has(page)) {
    anchorCache.set(page, anchorsOf(parsedPages.get(page) ?? parse(page)))
  }
  return anchorCache.get(page)
}

function checkLinks(page, { prose }) {
  for (const { line, text } of prose) {
    const outsideCode = text.replace(/`[^`]*`/g, '')
    const targets = [
      ...[...outsideCode.matchAll(/!?\[[^\]]*\]\(<?([^)\s>]+)>?(?:\s+"[^"]*")?\)/g)].map((match) => match[1]),
      ...[...outsideCode.matchAll(/<(?:img|a)\s[^>]*(?:src|href)="([^"]+)"/g)].map((match) => match[1]),
    ]
    for (const target of targets) {
      if (/^[a-z][\w+.-]*:/i.test(target)) continue // https:, mailto:: not checked offline
      const [path, anchor] = target.split('#')
      const file = path === '' ? page : relative(root, join(root, dirname(page), decodeURI(path))).replaceAll('\\', '/')
      if (!existsSync(join(root, file))) {
        report(page, line, `link to ${target}: no file ${file}`)
      } else if (anchor !== undefined) {
        if (!file.endsWith('.md') || statSync(join(root, file)).isDirectory()) {
          report(page, line, `link to ${target}: an anchor into something that is not a page`)
        } else if (!anchors(file).has(anchor)) {
          report(page, line, `link to ${target}: ${file} has no heading #${anchor}`)
        }
      }
    }
  }
}

const scripts = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts
function checkScripts(page, { lines }) {
  lines.forEach((text, index) => {
    for (const [, name] of text.matchAll(/\bnpm run ([\w:-]+)/g)) {
      if (!(name in scripts)) report(page, index + 1, `npm run ${name}: package.json has no such script`)
    }
  })
}

/** The names a block declares at its top level (imports included). */
function declaredNames(source) {
  const names = new Set()
  const bind = (name) => {
    if (ts.isIdentifier(name)) names.add(name.text)
    else for (const element of name.elements) if (!ts.isOmittedExpression(element)) bind(element.name)
  }
  for (const statement of source.statements) {
    if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations) bind(declaration.name)
    } else if ((ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement)) && statement.name) {
      names.add(statement.name.text)
    } else if (ts.isImportDeclaration(statement) && statement.importClause) {
      const { name, namedBindings } = statement.importClause
      if (name) names.add(name.text)
      if (namedBindings && ts.isNamespaceImport(namedBindings)) names.add(namedBindings.name.text)
      else if (namedBindings) for (const element of namedBindings.elements) names.add(element.name.text)
    }
  }
  return names
}

function usedNames(source) {
  const names = new Set()
  const visit = (node) => {
    if (ts.isIdentifier(node)) names.add(node.text)
    ts.forEachChild(node, visit)
  }
  visit(source)
  return names
}

/**
 * Each checkable block as a module of its own: a file only the compiler host below sees (nothing is
 * written), at the root so that packages resolve from node_modules as the repo's own files do.
 */
const modules = new Map()
for (const [page, { blocks }] of parsedPages) {
  for (const block of blocks) {
    const lang = { ts: 'ts', typescript: 'ts', js: 'js', javascript: 'js' }[block.lang]
    if (lang === undefined || block.skipped !== undefined) continue
    const code = block.code.join('\n')
    const file = `${root}/.check-docs/${page.replace(/[/.]/g, '_')}_${block.line}.${lang === 'ts' ? 'mts' : 'mjs'}`
    const source = ts.createSourceFile(file, code, ts.ScriptTarget.Latest)
    const declared = declaredNames(source)
    const prelude =
      lang === 'ts'
        ? [...usedNames(source)].filter((name) => name in PRELUDE && !declared.has(name)).map((name) => PRELUDE[name])
        : []
    modules.set(file, {
      page,
      firstLine: block.line + 1 - prelude.length,
      text: [...prelude, code, 'export {}'].join('\n'),
    })
  }
}

function typeCheck() {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(root, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'))
      },
    },
  )
  const options = {
    ...config.options,
    noEmit: true,
    allowJs: true,
    checkJs: true,
    paths: { nexttoken: [`${root}/index.ts`], 'nexttoken/queue': [`${root}/lib/queue/index.ts`] },
  }
  const host = ts.createCompilerHost(options)
  const { fileExists, readFile, getSourceFile } = host
  host.fileExists = (file) => modules.has(file) || fileExists.call(host, file)
  host.readFile = (file) => modules.get(file)?.text ?? readFile.call(host, file)
  host.getSourceFile = (file, languageVersion, ...rest) =>
    modules.has(file)
      ? ts.createSourceFile(file, modules.get(file).text, languageVersion)
      : getSourceFile.call(host, file, languageVersion, ...rest)
  const program = ts.createProgram([...modules.keys()], options, host)
  for (const diagnostic of [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]) {
    problems.push(`tsconfig: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`)
  }
  for (const [file, { page, firstLine }] of modules) {
    const source = program.getSourceFile(file)
    for (const diagnostic of [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]) {
      const { line } = source.getLineAndCharacterOfPosition(diagnostic.start ?? 0)
      report(page, firstLine + line, ts.flattenDiagnosticMessageText(diagnostic.messageText, ' '))
    }
  }
}

for (const [page, parsed] of parsedPages) {
  checkLinks(page, parsed)
  checkScripts(page, parsed)
}
typeCheck()

if (problems.length > 0) {
  console.error(problems.join('\n'))
  console.error(`check-docs: ${problems.length} problem(s) in ${pages.join(', ')}`)
  process.exit(1)
}
console.log(`check-docs: ${modules.size} code blocks type-checked, links and scripts resolved in ${pages.length} pages`)
