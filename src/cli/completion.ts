// `gatehouse completion bash|zsh`: completion scripts generated from the command definition
// (program.ts), so a new verb or flag completes as soon as it exists. Both shells share one walk:
// the words typed so far pick the verb (skipping flags and the values they take), then the word
// under the cursor completes as a subcommand, a flag, a flag's value or the verb's argument.
import type { Command, Option } from 'commander';
import { isHidden, pathOf, walk } from './verb.js';

interface Verb {
  /** `policy explain`; '' for the root. */
  path: string;
  subcommands: { name: string; summary: string }[];
  flags: { names: string[]; summary: string; takesValue: boolean; value: string }[];
  /** How the verb's arguments complete: '@file', '@dir', a list of words, or '' for nothing. */
  operand: string;
}

/** How a value completes: files for <file>/<archive>, folders for <dir>, saved contexts for <context>, the choices when there are some. */
function valueKind(placeholder: string, choices: readonly string[] | undefined): string {
  if (choices) return choices.join(' ');
  if (placeholder === 'context') return '@context';
  if (/^(file|archive|old|new)$/.test(placeholder)) return /^(old|new)$/.test(placeholder) ? '@dir' : '@file';
  if (placeholder === 'dir') return '@dir';
  return '';
}

function placeholderOf(option: Option): string {
  return /<([^>]+)>/.exec(option.flags)?.[1] ?? '';
}

function verbs(program: Command): Verb[] {
  const found: Verb[] = [];
  for (const command of walk(program)) {
    const path = pathOf(command);
    if (isHidden(command) || path === 'help') continue; // help's arguments are the verbs: below
    const help = command.createHelp();
    const subcommands = help
      .visibleCommands(command)
      .filter((c) => c.name() !== 'help')
      .map((c) => ({ name: c.name(), summary: c.summary() || firstLine(c.description()) }));
    if (subcommands.length > 0) subcommands.push({ name: 'help', summary: "a command's help" });
    const flags = help.visibleOptions(command).map((o) => ({
      names: [o.short, o.long].filter((n): n is string => Boolean(n)),
      summary: o.description,
      takesValue: o.required || o.optional,
      value: valueKind(placeholderOf(o), o.argChoices),
    }));
    const first = command.registeredArguments[0];
    const operand = first ? valueKind(first.name(), first.argChoices) : '';
    found.push({ path, subcommands, flags, operand });
  }
  // `gatehouse help <TAB>` offers the verbs.
  const root = found.find((v) => v.path === '');
  found.push({ path: 'help', subcommands: [], flags: [], operand: root ? root.subcommands.filter((s) => s.name !== 'help').map((s) => s.name).join(' ') : '' });
  return found;
}

const firstLine = (text: string) => text.split('\n')[0] ?? '';

/** Single-quoted for sh and zsh: nothing inside is expanded. */
const quote = (text: string) => `'${text.replace(/'/g, "'\\''")}'`;

/** A shell function answering one word list per verb (or per verb and flag). */
function lookup(name: string, rows: [string, string][]): string {
  const arms = rows.filter(([, value]) => value !== '').map(([key, value]) => `    ${quote(key)}) echo ${quote(value)} ;;`);
  return `${name}() {\n  case "$1" in\n${arms.join('\n')}\n  esac\n}`;
}

/** The functions both shells use: the words of each verb, and how each value completes. */
function sharedFunctions(all: Verb[]): string {
  return [
    lookup('_gatehouse_words', all.map((v) => [v.path, v.subcommands.map((s) => s.name).join(' ')])),
    lookup('_gatehouse_flags', all.map((v) => [v.path, v.flags.flatMap((f) => f.names).join(' ')])),
    lookup('_gatehouse_valued', all.map((v) => [v.path, v.flags.filter((f) => f.takesValue).flatMap((f) => f.names).join(' ')])),
    lookup('_gatehouse_value', all.flatMap((v) => v.flags.flatMap((f) => f.names.map((n): [string, string] => [`${v.path}|${n}`, f.value])))),
    lookup('_gatehouse_operand', all.map((v) => [v.path, v.operand])),
  ].join('\n\n');
}

/** Sets `verb` to the verb the typed words name, and `skip` to 1 when the last word is a flag awaiting its value. */
const WALK = `  local verb='' word i skip=0
  for ((i = FIRST; i < LAST; i++)); do
    word="\${WORDS[i]}"
    if ((skip)); then skip=0; continue; fi
    if [[ "$word" == -* ]]; then
      [[ " $(_gatehouse_valued "$verb") " == *" $word "* ]] && skip=1
    elif [[ " $(_gatehouse_words "$verb") " == *" $word "* ]]; then
      verb="\${verb:+$verb }$word"
    fi
  done`;

function bash(all: Verb[]): string {
  return `# bash completion for gatehouse: source <(gatehouse completion bash)
${sharedFunctions(all)}

_gatehouse_reply() {
  case "$1" in
    @file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$2")) ;;
    @dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$2")) ;;
    @context) COMPREPLY=($(compgen -W "$(gatehouse __contexts 2>/dev/null)" -- "$2")) ;;
    *) COMPREPLY=($(compgen -W "$1" -- "$2")) ;;
  esac
}

_gatehouse() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
${WALK.replace('FIRST', '1').replace('LAST', 'COMP_CWORD').replace('WORDS', 'COMP_WORDS')}
  COMPREPLY=()
  if ((skip)); then
    _gatehouse_reply "$(_gatehouse_value "$verb|\${COMP_WORDS[COMP_CWORD-1]}")" "$cur"
  elif [[ "$cur" == -* ]]; then
    _gatehouse_reply "$(_gatehouse_flags "$verb")" "$cur"
  elif [[ -n "$(_gatehouse_words "$verb")" ]]; then
    _gatehouse_reply "$(_gatehouse_words "$verb")" "$cur"
  else
    _gatehouse_reply "$(_gatehouse_operand "$verb")" "$cur"
  fi
}
complete -F _gatehouse gatehouse
`;
}

/** `name:summary` lines for zsh's _describe (a colon in a name is escaped). */
function described(name: string, rows: [string, string[]][]): string {
  const arms = rows.filter(([, items]) => items.length > 0).map(([key, items]) => `    ${quote(key)}) print -rl -- ${items.map(quote).join(' ')} ;;`);
  return `${name}() {\n  case "$1" in\n${arms.join('\n')}\n  esac\n}`;
}

function zsh(all: Verb[]): string {
  const item = (name: string, summary: string) => `${name.replace(/:/g, '\\:')}:${summary.replace(/\s+/g, ' ')}`;
  return `#compdef gatehouse
# zsh completion for gatehouse: source <(gatehouse completion zsh) (after compinit)
${sharedFunctions(all)}

${described('_gatehouse_described_words', all.map((v) => [v.path, v.subcommands.map((s) => item(s.name, s.summary))]))}

${described('_gatehouse_described_flags', all.map((v) => [v.path, v.flags.flatMap((f) => f.names.map((n) => item(n, f.summary)))]))}

_gatehouse_offer() {
  case "$1" in
    @file) _files ;;
    @dir) _files -/ ;;
    @context) local -a names; names=(\${(f)"$(gatehouse __contexts 2>/dev/null)"}); compadd -a names ;;
    '') return 1 ;;
    *) local -a values; values=(\${=1}); compadd -a values ;;
  esac
}

_gatehouse() {
  local cur="\${words[CURRENT]}"
${WALK.replace('FIRST', '2').replace('LAST', 'CURRENT').replace('WORDS', 'words')}
  local -a items
  if ((skip)); then
    _gatehouse_offer "$(_gatehouse_value "$verb|\${words[CURRENT-1]}")"
  elif [[ "$cur" == -* ]]; then
    items=("\${(@f)$(_gatehouse_described_flags "$verb")}")
    _describe -t options flag items
  elif [[ -n "$(_gatehouse_words "$verb")" ]]; then
    items=("\${(@f)$(_gatehouse_described_words "$verb")}")
    _describe -t commands command items
  else
    _gatehouse_offer "$(_gatehouse_operand "$verb")"
  fi
}
compdef _gatehouse gatehouse
`;
}

export function completionScript(program: Command, shell: 'bash' | 'zsh'): string {
  const all = verbs(program);
  return shell === 'bash' ? bash(all) : zsh(all);
}
