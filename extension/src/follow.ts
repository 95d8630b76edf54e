// Following one attempt's log: asked from offset 0 (the whole text), then only what follows
// the offset the server returned, appended, until the attempt has ended. A server that
// returns no offset sends the whole log each time: it replaces the text. No JupyterLab imports: tested in node.
import { Wire } from './tokens';

/** Ask the log of the attempt followed, from ``offset`` (0: the whole text). */
export type LogFetch = (offset: number) => Promise<Wire.ILog>;

export class LogFollower {
  constructor(readonly fetch: LogFetch) {}

  /** The text so far, and the attempt's last answer (state, error, traceback, executed notebook). */
  text = '';
  last: Wire.ILog | null = null;
  /** Whether the attempt has ended and its whole log is in ``text``: nothing more to ask. */
  done = false;

  /** Ask once; returns whether the text or the state changed. */
  async tick(): Promise<boolean> {
    if (this.done) {
      return false;
    }
    const answer = await this.fetch(this._offset);
    const before = this.text;
    const state = this.last?.state;
    if (typeof answer.offset === 'number') {
      this.text = (this._offset === 0 ? '' : this.text) + (answer.text ?? '');
      this._offset = answer.offset;
    } else {
      this.text = answer.text ?? '';
    }
    this.last = answer;
    // ended: the server says so, or (without the offset protocol) the state is a final one
    this.done = answer.complete ?? !['running', 'pending', 'up_for_retry'].includes(answer.state);
    return this.text !== before || state !== answer.state;
  }

  private _offset = 0;
}
