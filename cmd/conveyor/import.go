package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/internal/importer/codepipeline"
)

func importCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Convert pipeline declarations of other systems to Conveyor pipeline files",
	}
	cmd.AddCommand(importCodePipelineCmd())
	return cmd
}

func importCodePipelineCmd() *cobra.Command {
	var out, gitBase string
	var placeholders bool
	cmd := &cobra.Command{
		Use:   "codepipeline FILE.json",
		Short: "Convert an AWS CodePipeline declaration to a Conveyor pipeline file",
		Long: `Convert an AWS CodePipeline declaration (the output of aws codepipeline get-pipeline, a
create-pipeline or update-pipeline input, or a bare pipeline object) to a Conveyor pipeline
file, checked as conveyor validate would. Comments at its top say what was dropped or needs
doing (a CodeBuild project's buildspec is expected in the source as buildspec.yml).

CodeCommit, CodeStarSourceConnection and GitHub sources become Source/Git (repository URL:
--git-base-url followed by the repository id), CodeBuild becomes Build/CodeBuild or
Test/CodeBuild (parameter-store and secrets-manager variables become pipeline secrets), Manual
becomes Approval/Manual. Actions that need AWS (S3, CloudFormation, CodeDeploy, ECS, Lambda,
...) are listed in one error; --placeholders writes them as Commands actions that fail with
that explanation, so the rest of the pipeline runs.

Exit status: 0; 1 when actions cannot be imported or the result is not a valid pipeline;
2 for bad usage or a file that is not a CodePipeline declaration.`,
		Example: `  aws codepipeline get-pipeline --name my-pipeline > my-pipeline.json
  conveyor import codepipeline my-pipeline.json -o pipeline.yaml
  conveyor import codepipeline --git-base-url https://git.example.com/team my-pipeline.json
  conveyor import codepipeline --placeholders my-pipeline.json -o pipeline.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return usageErr("read declaration: %v", err)
			}
			yml, err := codepipeline.Import(args[0], data, codepipeline.Options{GitBaseURL: gitBase, Placeholders: placeholders})
			if err != nil {
				if codepipeline.IsFormat(err) {
					return &exitError{code: 2, err: err}
				}
				return &exitError{code: 1, err: err}
			}
			if out == "" || out == "-" {
				_, err := c.OutOrStdout().Write(yml)
				return err
			}
			return writeFileAtomic(out, yml)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the pipeline file here instead of to standard output")
	cmd.Flags().StringVar(&gitBase, "git-base-url", codepipeline.DefaultGitBaseURL, "URL prefixed to repository ids (owner/repo, CodeCommit names)")
	cmd.Flags().BoolVar(&placeholders, "placeholders", false, "write actions that need AWS as failing Commands actions instead of refusing")
	return cmd
}

// writeFileAtomic writes data to path through a temporary file in the same directory.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
