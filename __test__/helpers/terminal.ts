// A real terminal for tests: a tmux session on its own server socket, driven with send-keys and
// read with capture-pane, as a person at a terminal would drive the command.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** Quotes `arg` for the shell tmux runs the command in. */
const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`

export class Terminal {
  private readonly socket = `nexttoken-test-${process.pid}-${Math.random().toString(36).slice(2)}`

  private constructor() {}

  /**
   * Starts `argv` in a 160x50 terminal with `env` added; the pane stays open after it exits. The
   * variables that ask for plain output (CI runners set `CI`) are removed, as on a desk.
   */
  static async start(argv: string[], env: Record<string, string> = {}): Promise<Terminal> {
    const terminal = new Terminal()
    const unset = ['CI', 'NO_COLOR', 'HF_HUB_DISABLE_PROGRESS_BARS'].map((name) => `-u ${name}`).join(' ')
    const assignments = Object.entries({ TERM: 'xterm-256color', ...env }).map(([k, v]) => `${k}=${quote(v)}`)
    const command = `env ${unset} ${assignments.join(' ')} ${argv.map(quote).join(' ')}; echo "[exit $?]"; sleep 600`
    await terminal.tmux('new-session', '-d', '-x', '160', '-y', '50', command)
    return terminal
  }

  private async tmux(...args: string[]): Promise<string> {
    return (await run('tmux', ['-L', this.socket, '-f', '/dev/null', ...args])).stdout
  }

  /** What the terminal shows now. */
  async screen(): Promise<string> {
    return this.tmux('capture-pane', '-p', '-J')
  }

  /** Waits until the screen matches `pattern`; returns the screen. */
  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const screen = await this.screen()
      if (pattern.test(screen)) return screen
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}; the screen shows:\n${screen}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  /** Types keys, as tmux names them (`Enter`, `C-c`, `q`). */
  async keys(...keys: string[]): Promise<void> {
    await this.tmux('send-keys', ...keys)
  }

  async close(): Promise<void> {
    await this.tmux('kill-server').catch(() => {})
  }
}
