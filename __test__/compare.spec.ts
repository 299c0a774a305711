// The comparison helpers every logit check uses (helpers/fixtures.ts): a NaN or an unmatched
// infinity anywhere in a row fails any bound, wherever it sits.
import test from 'ava'

import { klDivergence, maxAbsDiff } from './helpers/fixtures'

const ROW = [0.5, -1, 2, 3.25, -4]

test('maxAbsDiff: a NaN on either side fails any bound, first, middle or last', (t) => {
  t.is(maxAbsDiff(ROW, ROW), 0)
  t.is(maxAbsDiff(ROW, [0.5, -1, 2.25, 3.25, -4]), 0.25)
  for (const at of [0, 2, ROW.length - 1]) {
    const withNan = ROW.map((x, i) => (i === at ? Number.NaN : x))
    t.is(maxAbsDiff(withNan, ROW), Number.POSITIVE_INFINITY, `NaN at ${at}, left`)
    t.is(maxAbsDiff(ROW, withNan), Number.POSITIVE_INFINITY, `NaN at ${at}, right`)
    t.is(maxAbsDiff(withNan, withNan), Number.POSITIVE_INFINITY, `NaN at ${at}, both`)
    t.false(maxAbsDiff(Float32Array.from(withNan), ROW) <= 1e9)
  }
  // The defect this replaced: a later finite difference overwrote the NaN.
  t.is(maxAbsDiff([Number.NaN, 1, 2], [0, 1, 2]), Number.POSITIVE_INFINITY)
})

test('maxAbsDiff: equal infinities match, any other infinity fails', (t) => {
  const inf = Number.POSITIVE_INFINITY
  t.is(maxAbsDiff([-inf, 1, inf], [-inf, 1, inf]), 0)
  for (const at of [0, 2, ROW.length - 1]) {
    for (const bad of [inf, -inf]) {
      const row = ROW.map((x, i) => (i === at ? bad : x))
      t.is(maxAbsDiff(row, ROW), inf, `${bad} at ${at}`)
    }
  }
  t.is(maxAbsDiff([inf], [-inf]), inf)
  t.throws(() => maxAbsDiff([1, 2], [1]))
})

test('klDivergence: 0 for equal rows, > 0 for a rescaled row, Infinity with a NaN anywhere', (t) => {
  t.is(klDivergence(ROW, ROW), 0)
  const halved = ROW.map((x) => x / 2)
  t.true(klDivergence(ROW, halved) > 0.05, `${klDivergence(ROW, halved)}`)
  for (const at of [0, 2, ROW.length - 1]) {
    const withNan = ROW.map((x, i) => (i === at ? Number.NaN : x))
    t.is(klDivergence(ROW, withNan), Number.POSITIVE_INFINITY, `NaN at ${at}`)
    t.is(klDivergence(withNan, ROW), Number.POSITIVE_INFINITY, `NaN at ${at}, reference`)
  }
})
