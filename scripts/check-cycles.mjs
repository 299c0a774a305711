#!/usr/bin/env node
// Fails (exit 1) when a module imports itself back, transitively: in the Rust core
// (crates/nexttoken/src) or in the TypeScript API (index.ts, cli.ts, lib/). Plain Node, no
// dependency: the graphs are built from the import statements, not from a compiler.
//
// Rust. A node is a file (`a/b.rs` or `a/b/mod.rs` is module `a::b`; a `mod x { .. }` written
// inline, such as `mod tests`, is part of its file). A file depends on the module a path names:
// `use` trees and paths in code that start with `crate::`, `super::`, `self::` or a submodule the
// file declares. The path goes to the deepest module file it names, and an item that module only
// re-exports (`pub use x::Item`, `pub use x::*`) goes on to the file that defines it: using
// `crate::Config` depends on config.rs, not on lib.rs. Re-exports are imports too, so a `mod.rs`
// depends on the children it re-exports; declaring a child (`mod x;`) is not an import. A module
// and its submodules are one unit seen from outside (Rust lets a child see its ancestors' private
// items), so a module using what an ancestor of it defines (`super::PANEL`) is no edge; the
// ancestor using the child is. `#[cfg(test)]` inline modules are left out: a unit test may reach
// across its module's layer (a tile's test runs the whole matmul). Not seen: a call to an
// inherent method written in another module (`Tokenizer::from_dir` is defined in load/), which
// needs no import.
//
// TypeScript. A node is a .ts file; an edge is a relative `import`/`export ... from`, a
// side-effect `import '...'` or a dynamic `import('...')`. Type-only imports (`import type`,
// `import { type X }`) count as well: they create no cycle at run time, but two files that need
// each other's types are still one design split in two, and a type import today is a value
// import after the next edit.
//
// Usage: node scripts/check-cycles.mjs [--rust DIR] [--ts FILE_OR_DIR ...]
// (default: the project's own sources; the options point it at other trees, for its test).

import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

// Whether module `a` (a path of names) is `b` or one of `b`'s ancestors.
const isAncestor = (a, b) => a.length <= b.length && a.every((name, i) => name === b[i])

function walk(dir, keep) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : walk(path, keep)
    return keep(path) ? [path] : []
  })
}

// Source text without comments, string and char literals (braces in them would miscount blocks).
function stripRust(text) {
  return text.replace(
    /\/\/[^\n]*|\/\*[\s\S]*?\*\/|b?r(#*)"[\s\S]*?"\1|b?"(?:\\[\s\S]|[^"\\])*"|b?'(?:\\.|[^\\'\n])'/g,
    (m) => m.replace(/[^\n]/g, ' '),
  )
}

// The paths of a use tree: `a::{b, c::{d, e as f}, self}` → a::b, a::c::d, a::c::e, a.
function expandUseTree(tree) {
  tree = tree.replace(/\s+as\s+\w+/g, '').replace(/\s+/g, '')
  const open = tree.indexOf('{')
  if (open < 0) return [tree.replace(/::self$/, '')]
  const prefix = tree.slice(0, open)
  const inner = tree.slice(open + 1, tree.lastIndexOf('}'))
  const parts = []
  let depth = 0
  let start = 0
  for (let i = 0; i <= inner.length; i++) {
    const c = inner[i]
    if (c === '{') depth++
    else if (c === '}') depth--
    else if ((c === ',' || i === inner.length) && depth === 0) {
      if (i > start) parts.push(inner.slice(start, i))
      start = i + 1
    }
  }
  return parts.flatMap((part) => expandUseTree(prefix + part)).map((p) => p.replace(/::self$/, ''))
}

// Each module path in `text` of the file of module `filePath`, with the module path of the
// inline modules it is written in (`mod tests { .. }`), so that `super::` is resolved right.
function rustReferences(text, filePath) {
  const code = stripRust(text)
  const refs = [] // { scope: string[], path: string[], reexport: boolean }
  const declared = [] // child modules declared in this file (`mod x;`)
  const stack = [] // open braces: { name } of an inline module, or null
  const token =
    /\bmod\s+(\w+)\s*([;{])|((?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);)|(\$?\b(?:crate|super|self|\w+)(?:::\w+)+)|[{}]/g
  for (let m = token.exec(code); m; m = token.exec(code)) {
    const scope = [...filePath, ...stack.filter(Boolean).map((mod) => mod.name)]
    const inTests = stack.some((mod) => mod?.test)
    if (m[1]) {
      const test = /#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?$/.test(code.slice(0, m.index))
      if (m[2] === ';') declared.push(m[1])
      else stack.push({ name: m[1], test })
    } else if (inTests && m[0] !== '{' && m[0] !== '}') {
      // Unit tests may reach across their module's layer (a tile's test runs the whole matmul).
    } else if (m[3]) {
      const reexport = /^pub\b/.test(m[3].trim())
      for (const path of expandUseTree(m[4])) refs.push({ scope, path: path.split('::'), reexport })
    } else if (m[5]) {
      refs.push({ scope, path: m[5].replace(/^\$/, '').split('::'), reexport: false })
    } else if (m[0] === '{') stack.push(null)
    else if (m[0] === '}') stack.pop()
  }
  return { refs, declared }
}

function rustGraph(srcDir) {
  const files = walk(srcDir, (p) => p.endsWith('.rs'))
  const modules = new Map() // 'a::b' → { file, refs, declared }
  for (const file of files) {
    const rel = relative(srcDir, file).replace(/\\/g, '/')
    const segments = rel.replace(/\.rs$/, '').split('/')
    if (segments.at(-1) === 'mod' || (segments.length === 1 && ['lib', 'main'].includes(segments[0]))) {
      segments.pop()
    }
    const { refs, declared } = rustReferences(readFileSync(file, 'utf8'), segments)
    modules.set(segments.join('::'), { file: rel, path: segments, refs, declared })
  }
  // An absolute module path for `path` written in `scope`, or null for what is not this crate's
  // (std::, an extern crate, a local variable's `x::y`).
  const absolute = (path, scope, declared, filePath) => {
    let [head, ...rest] = path
    if (head === 'crate') return rest
    if (head === 'self') return [...scope, ...rest]
    if (head === 'super') {
      let base = scope
      while (head === 'super') {
        base = base.slice(0, -1)
        ;[head, ...rest] = rest
      }
      return [...base, head, ...rest]
    }
    // A path from a child module this file declares (edition 2018 names it without `self::`).
    if (declared.includes(head) && scope.length === filePath.length) return [...filePath, ...path]
    return null
  }
  // The file module `path` lands in, following re-exports of its last item.
  const target = (path, seen = new Set()) => {
    let depth = path.length
    while (depth > 0 && !modules.has(path.slice(0, depth).join('::'))) depth--
    const module = modules.get(path.slice(0, depth).join('::'))
    if (!module) return null
    const item = path[depth]
    if (item !== undefined && item !== '*' && !seen.has(`${module.file}:${item}`)) {
      seen.add(`${module.file}:${item}`)
      for (const ref of module.refs.filter((r) => r.reexport)) {
        const last = ref.path.at(-1)
        if (last !== item && last !== '*') continue
        const from = absolute(ref.path, ref.scope, module.declared, module.path)
        if (!from) continue
        const found = target(last === '*' ? [...from.slice(0, -1), item] : from, seen)
        if (found && (last === item || found.file !== module.file)) return found
      }
    }
    return module
  }
  const graph = new Map()
  for (const module of modules.values()) {
    const edges = new Set()
    for (const ref of module.refs) {
      const path = absolute(ref.path, ref.scope, module.declared, module.path)
      const to = path && target(path)
      if (to && !isAncestor(to.path, module.path)) edges.add(to.file)
    }
    graph.set(module.file, edges)
  }
  return graph
}

const tsImport =
  /\b(?:import|export)\s+(type\s+)?(?:([\w*{}\s,$]+?)\s+from\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g

function tsGraph(entries) {
  const files = entries.flatMap((entry) =>
    statSync(entry).isDirectory() ? walk(entry, (p) => p.endsWith('.ts') && !p.endsWith('.d.ts')) : [entry],
  )
  const base = files.length ? commonDir(files) : '.'
  const known = new Set(files)
  const graph = new Map()
  for (const file of files) {
    const edges = new Set()
    const text = readFileSync(file, 'utf8').replace(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g, '')
    for (const m of text.matchAll(tsImport)) {
      const spec = m[3] ?? m[4]
      if (!spec.startsWith('.')) continue
      const path = resolve(dirname(file), spec)
      const to = [`${path}.ts`, join(path, 'index.ts'), path].find((p) => known.has(p))
      if (to && to !== file) edges.add(relative(base, to))
    }
    graph.set(relative(base, file), edges)
  }
  return graph
}

// The deepest directory that holds all of `files`, which their names are shown relative to.
function commonDir(files) {
  let dir = dirname(files[0])
  while (!files.every((f) => f.startsWith(`${dir}/`))) dir = dirname(dir)
  return dir
}

// Not every elementary cycle is needed: one cycle per strongly connected component (Tarjan),
// found by walking inside the component, shows what to cut.
function cycles(graph) {
  let index = 0
  const indices = new Map()
  const low = new Map()
  const stack = []
  const onStack = new Set()
  const components = []
  const connect = (v) => {
    indices.set(v, index)
    low.set(v, index++)
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        connect(w)
        low.set(v, Math.min(low.get(v), low.get(w)))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), indices.get(w)))
    }
    if (low.get(v) === indices.get(v)) {
      const component = []
      let w
      do {
        w = stack.pop()
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1) components.push(component)
    }
  }
  for (const v of graph.keys()) if (!indices.has(v)) connect(v)
  return components.map((component) => {
    const inside = new Set(component)
    const start = [...component].sort()[0]
    // Shortest way back to `start` (breadth first), shown as the cycle.
    const from = new Map([[start, null]])
    const queue = [start]
    while (queue.length) {
      const v = queue.shift()
      for (const w of graph.get(v)) {
        if (w === start) {
          const path = [v]
          for (let p = from.get(v); p; p = from.get(p)) path.unshift(p)
          return { files: component.sort(), path: [...path, start] }
        }
        if (inside.has(w) && !from.has(w)) {
          from.set(w, v)
          queue.push(w)
        }
      }
    }
    return { files: component.sort(), path: component }
  })
}

function main(argv) {
  const args = { rust: [], ts: [] }
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '')
    if (!(key in args) || argv[i + 1] === undefined) {
      console.error('usage: check-cycles.mjs [--rust DIR] [--ts FILE_OR_DIR ...]')
      return 2
    }
    args[key].push(resolve(argv[i + 1]))
  }
  if (!args.rust.length && !args.ts.length) {
    args.rust.push(join(root, 'crates/nexttoken/src'))
    args.ts.push(join(root, 'index.ts'), join(root, 'cli.ts'), join(root, 'lib'))
  }
  const found = [
    ...args.rust.flatMap((dir) => cycles(rustGraph(dir)).map((c) => ({ ...c, where: relative(root, dir) }))),
    ...(args.ts.length ? cycles(tsGraph(args.ts)).map((c) => ({ ...c, where: 'TypeScript' })) : []),
  ]
  for (const cycle of found) {
    console.error(`import cycle in ${cycle.where}: ${cycle.path.join(' -> ')}`)
    if (cycle.files.length > cycle.path.length - 1) console.error(`  (all entangled: ${cycle.files.join(', ')})`)
  }
  if (!found.length) console.log('no import cycles')
  return found.length ? 1 : 0
}

process.exitCode = main(process.argv.slice(2))
