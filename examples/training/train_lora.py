#!/usr/bin/env python3
"""Fine-tunes the proxy model on a procy export with LoRA: TRL's SFTTrainer,
DPOTrainer or KTOTrainer with a PEFT LoraConfig, reading the export's
JSONL as it is (trl-sft, trl-dpo, trl-kto rows) - no reformatting and no
truncation: every prompt and target is trained on whole.

    python3 train_lora.py --data trl-sft.train.jsonl --method sft \\
        --base-model Qwen/Qwen2.5-1.5B-Instruct --output adapter
    python3 train_lora.py --data trl-dpo.train.jsonl --method dpo --dry-run

Progress goes to standard output as JSON lines procy reads (`procy train
status` and `log`): {"event": "progress", "step", "total", "epoch",
"loss", "learning_rate"}, then {"event": "done", "output"}. A bad row is
named by file and line, and nothing is trained. --dry-run checks the data
and says what it would train, without torch or TRL installed. --check
checks the data and that every library training needs imports here
(procy runs it before it starts a job, the way the job will run): each
one missing is named, {"event": "missing", "modules": [...], "error"},
and it exits 3.

It runs where the GPU is (procy stages it there with the export:
`procy train start`); this file is procy's, shipped in its binary.
"""
import argparse
import json
import sys

ROLES = {"system", "user", "assistant"}


def say(**fields):
    print(json.dumps(fields, ensure_ascii=False), flush=True)


def is_messages(value, last=None):
    if not isinstance(value, list) or not value:
        return False
    for m in value:
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            return False
        if m["role"] not in ROLES or not isinstance(m["content"], str):
            return False
    return last is None or value[-1]["role"] == last


def check_row(method, row):
    """None if the row is what the method trains on, else what is wrong."""
    if not isinstance(row, dict):
        return "not a JSON object"
    if method == "sft":
        if not is_messages(row.get("messages"), "assistant"):
            return "needs messages: a list of {role, content} ending with the assistant's"
    elif method == "dpo":
        if not is_messages(row.get("prompt")):
            return "needs prompt: a list of {role, content}"
        for side in ("chosen", "rejected"):
            if not is_messages(row.get(side), "assistant"):
                return "needs %s: the assistant's message" % side
    elif method == "kto":
        if not is_messages(row.get("prompt")):
            return "needs prompt: a list of {role, content}"
        if not is_messages(row.get("completion"), "assistant"):
            return "needs completion: the assistant's message"
        if not isinstance(row.get("label"), bool):
            return "needs label: true or false"
    return None


def read(path, method):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise SystemExit("%s:%d: not JSON: %s" % (path, n, e))
            why = check_row(method, row)
            if why:
                raise SystemExit("%s:%d: not a %s row: %s" % (path, n, method, why))
            rows.append(row)
    if not rows:
        raise SystemExit("%s: no rows" % path)
    return rows


def text_size(row):
    size = 0
    for value in row.values():
        if isinstance(value, list):
            size += sum(len(m["content"]) for m in value)
    return size


def train(args, rows):
    # imported here: --dry-run needs none of it
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    import trl

    class Progress(TrainerCallback):
        def on_log(self, targs, state, control, logs=None, **kw):
            logs = logs or {}
            say(event="progress", step=state.global_step, total=state.max_steps, epoch=state.epoch,
                loss=logs.get("loss"), learning_rate=logs.get("learning_rate"))

    lora = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.05,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    common = dict(output_dir=args.output, num_train_epochs=args.epochs, learning_rate=args.lr,
                  per_device_train_batch_size=args.batch_size, logging_steps=1, save_strategy="no",
                  report_to=[])
    data = Dataset.from_list(rows)
    if args.method == "sft":
        config = trl.SFTConfig(max_length=None, **common)
        trainer = trl.SFTTrainer(model=args.base_model, args=config, train_dataset=data, peft_config=lora,
                                 callbacks=[Progress()])
    elif args.method == "dpo":
        config = trl.DPOConfig(max_length=None, max_prompt_length=None, max_completion_length=None, **common)
        trainer = trl.DPOTrainer(model=args.base_model, args=config, train_dataset=data, peft_config=lora,
                                 callbacks=[Progress()])
    else:
        config = trl.KTOConfig(max_length=None, max_prompt_length=None, max_completion_length=None, **common)
        trainer = trl.KTOTrainer(model=args.base_model, args=config, train_dataset=data, peft_config=lora,
                                 callbacks=[Progress()])
    trainer.train()
    trainer.save_model(args.output)
    say(event="done", output=args.output)


# what train() imports, in the order a person installs them
NEEDED = ["torch", "transformers", "datasets", "peft", "trl"]


def check():
    """Imports what training needs; names each library that fails."""
    import importlib
    missing, first = [], None
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except Exception as e:  # an ImportError, or a library broken on import
            missing.append(name)
            first = first or "%s: %s" % (type(e).__name__, e)
    if missing:
        say(event="missing", modules=missing, error=first)
        print("train_lora.py: cannot train here: %s (missing: %s; pip install %s)"
              % (first, ", ".join(missing), " ".join(missing)), file=sys.stderr)
        return 3
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="the export's JSONL (trl-sft, trl-dpo or trl-kto)")
    p.add_argument("--method", choices=["sft", "dpo", "kto"], help="default: from the file's name")
    p.add_argument("--base-model", default="Qwen/Qwen2.5-1.5B-Instruct")
    p.add_argument("--output", default="adapter", help="where the adapter is saved")
    p.add_argument("--epochs", type=float, default=2)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--dry-run", action="store_true", help="check the data, say what would be trained")
    p.add_argument("--check", action="store_true", help="check the data and that training's libraries import")
    args = p.parse_args()
    if not args.method:
        for m in ("sft", "dpo", "kto"):
            if "trl-" + m in args.data:
                args.method = m
        if not args.method:
            raise SystemExit("--method sft|dpo|kto (the file's name does not say)")
    rows = read(args.data, args.method)
    sizes = [text_size(r) for r in rows]
    summary = dict(rows=len(rows), method=args.method, base_model=args.base_model, output=args.output,
                   epochs=args.epochs, characters=sum(sizes), longest=max(sizes))
    if args.method == "kto":
        summary["desirable"] = sum(1 for r in rows if r["label"])
        summary["undesirable"] = len(rows) - summary["desirable"]
    if args.dry_run:
        say(event="dry-run", **summary)
        return 0
    if args.check:
        return check()
    say(event="start", **summary)
    train(args, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
