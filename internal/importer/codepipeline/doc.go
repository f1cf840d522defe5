// Package codepipeline turns an AWS CodePipeline declaration (get-pipeline output, a
// create/update-pipeline input, or a bare pipeline object) into a Conveyor pipeline file.
// Providers Conveyor runs natively are mapped (CodeCommit, CodeStarSourceConnection and GitHub
// to Source/Git, CodeBuild to Build|Test/CodeBuild, Manual to Approval/Manual); actions that
// need AWS are reported together, or written as failing Commands placeholders on request.
// The result is checked with pipeline.Parse before it is returned.
package codepipeline
