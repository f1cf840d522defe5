// Package report parses the test reports actions write (JUnit XML, Cucumber JSON, NUnit 2
// and 3 XML, TestNG XML) into totals and the failed cases, bounded in what it reads and
// keeps. Collect reads an action's declared reports from its workspace: the Commands and
// CodeBuild providers call it once their commands ran, whatever their outcome, and the engine
// records the result on the action.
package report
