#!/usr/bin/env nextflow
/*
 * nof1 scatter/gather (DSL2): fit the reference once, split each patient file
 * into shards, assess the shards in parallel tasks, and concatenate the
 * outputs in shard order. The result is byte for byte the output of one
 * `nof1 assess` run on the whole file (see workflows/README.md).
 *
 * As a pipeline:
 *   nextflow run workflows/nextflow/main.nf \
 *       --reference fixtures/small/reference.csv \
 *       --patients fixtures/small/patients.csv --shards 4 --outdir results
 *
 * As a module, from another DSL2 script:
 *   include { NOF1_SCATTER } from './workflows/nextflow/main.nf'
 *   NOF1_SCATTER(reference_ch, patients_ch, '-n 8', 'csv')
 *
 * Needs the `nof1` binary on PATH (or --nof1 PATH, or a container that has
 * it), sh, awk and coreutils. split.sh and gather.sh are staged into the
 * tasks as inputs, so containers and remote executors need no extra mounts.
 */

nextflow.enable.dsl = 2

/*
 * Index of a shard from its name PREFIX-IIII.EXT, as written by split.sh.
 */
def shardIndex(shard) {
    def base = shard.baseName
    return base.substring(base.lastIndexOf('-') + 1).toInteger()
}

/*
 * Fit the model once. Every NOF1_ASSESS task reads the same model file.
 * task.ext.args: extra `nof1 fit` options (e.g. '--exclude sex,site').
 */
process NOF1_FIT {
    tag "${reference.name}"

    input:
    path reference

    output:
    path 'model.nof1', emit: model

    script:
    def nof1 = params.nof1 ?: 'nof1'
    def args = task.ext.args ?: ''
    """
    ${nof1} --threads ${task.cpus} --quiet fit \\
        --reference "${reference}" --out model.nof1 ${args}
    """
}

/*
 * Split one patient file into shards (header repeated, rows in order).
 * split_opt: '-n SHARDS' or '-l ROWS' (see split.sh -h).
 */
process NOF1_SPLIT {
    tag "${id}"

    input:
    tuple val(id), path(patients)
    val split_opt
    path split_script

    output:
    tuple val(id), path('shards/shard-*'), emit: shards

    script:
    """
    sh "${split_script}" ${split_opt} -o shards -p shard "${patients}"
    """
}

/*
 * Assess one shard against the shared model.
 * task.ext.args: extra `nof1 assess` options (e.g. '--exclude truth').
 */
process NOF1_ASSESS {
    tag "${id} shard ${index}"

    input:
    tuple val(id), val(index), path(shard)
    path model
    val format

    output:
    tuple val(id), val(index), path("${shard.baseName}.assessed.${format}"), emit: assessed

    script:
    def nof1 = params.nof1 ?: 'nof1'
    def args = task.ext.args ?: ''
    """
    ${nof1} --threads ${task.cpus} --quiet assess \\
        --model "${model}" --input "${shard}" \\
        --format ${format} --out "${shard.baseName}.assessed.${format}" ${args}
    """
}

/*
 * Concatenate the outputs of one patient file, given in shard order,
 * keeping the first header only (JSON Lines has none).
 */
process NOF1_GATHER {
    tag "${id}"

    input:
    tuple val(id), path(outputs, stageAs: 'in/*')
    val format
    path gather_script

    output:
    tuple val(id), path("${id}.assessed.${format}"), emit: assessed

    script:
    def no_header = format == 'jsonl' ? '-H' : ''
    """
    sh "${gather_script}" ${no_header} -o "${id}.assessed.${format}" ${outputs}
    """
}

/*
 * reference: a channel with one reference table.
 * patients:  a channel of tuple(id, patient table); each is sharded and
 *            gathered on its own, into ID.assessed.FORMAT.
 * split_opt: '-n SHARDS' or '-l ROWS'.
 * format:    'csv', 'tsv' or 'jsonl'.
 */
workflow NOF1_SCATTER {
    take:
    reference
    patients
    split_opt
    format

    main:
    def split_script = file("${moduleDir}/../split.sh", checkIfExists: true)
    def gather_script = file("${moduleDir}/../gather.sh", checkIfExists: true)

    NOF1_FIT(reference)
    // A value channel: every shard task reads the one model.
    def shared_model = NOF1_FIT.out.model.first()

    NOF1_SPLIT(patients, split_opt, split_script)
    def shards = NOF1_SPLIT.out.shards.flatMap { id, files ->
        (files instanceof List ? files : [files]).collect { f -> tuple(id, shardIndex(f), f) }
    }

    NOF1_ASSESS(shards, shared_model, format)

    // Tasks finish in any order: group by patient file, then order the
    // outputs by shard index (never by completion order) before gathering.
    def ordered = NOF1_ASSESS.out.assessed
        .groupTuple()
        .map { id, indices, files ->
            def pairs = [indices, files].transpose().sort { a, b -> a[0] <=> b[0] }
            tuple(id, pairs.collect { it[1] })
        }

    NOF1_GATHER(ordered, format, gather_script)

    emit:
    model = NOF1_FIT.out.model
    assessed = NOF1_GATHER.out.assessed
}

/*
 * Example entry workflow: --reference REF --patients 'PATIENTS' (a path or a
 * glob), --shards N or --rows_per_shard L, --format, --outdir (publishing is
 * set in nextflow.config).
 */
workflow {
    if (!params.reference || !params.patients) {
        error "Give --reference REF.csv and --patients PATIENTS.csv (see workflows/README.md)"
    }
    if (!(params.format in ['csv', 'tsv', 'jsonl'])) {
        error "--format must be csv, tsv or jsonl, not '${params.format}'"
    }
    def split_opt = params.rows_per_shard ? "-l ${params.rows_per_shard}" : "-n ${params.shards}"

    def reference = Channel.fromPath(params.reference, checkIfExists: true)
    def patients = Channel.fromPath(params.patients, checkIfExists: true).map { f -> tuple(f.baseName, f) }

    NOF1_SCATTER(reference, patients, split_opt, params.format)
}
